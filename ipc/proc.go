package ipc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// Paths of the kernel's tables of System V objects. They are variables
// only so that tests can point the List functions at sample tables.
var (
	procShm = "/proc/sysvipc/shm"
	procMsg = "/proc/sysvipc/msg"
	procSem = "/proc/sysvipc/sem"
)

// ShmRecord is one line of /proc/sysvipc/shm: a shared-memory segment.
type ShmRecord struct {
	Perm
	ID         int       // shmid
	Size       uint64    // size in bytes
	CreatorPID int       // pid of the creator
	LastPID    int       // pid of the last shmat or shmdt
	Attached   uint64    // number of current attaches
	AttachTime time.Time // last shmat (zero if never)
	DetachTime time.Time // last shmdt (zero if never)
	ChangeTime time.Time // creation or last IPC_SET
	RSS        uint64    // resident bytes
	Swap       uint64    // swapped-out bytes
}

// MsgRecord is one line of /proc/sysvipc/msg: a message queue.
type MsgRecord struct {
	Perm
	ID          int       // msqid
	Bytes       uint64    // bytes of message text on the queue
	Messages    uint64    // messages on the queue
	LastSendPID int       // pid of the last msgsnd
	LastRecvPID int       // pid of the last msgrcv
	SendTime    time.Time // last msgsnd (zero if never)
	RecvTime    time.Time // last msgrcv (zero if never)
	ChangeTime  time.Time // creation or last IPC_SET
}

// SemRecord is one line of /proc/sysvipc/sem: a semaphore set.
type SemRecord struct {
	Perm
	ID         int       // semid
	Count      int       // semaphores in the set
	OpTime     time.Time // last semop (zero if never)
	ChangeTime time.Time // creation or last change
}

// ListShm returns every shared-memory segment the caller may see. If the
// table cannot be read, or a line of it cannot be parsed, it returns no
// records and the error.
func ListShm() ([]ShmRecord, error) {
	var out []ShmRecord
	err := readTable(procShm, func(r *row) {
		out = append(out, ShmRecord{
			Perm: r.perm(), ID: r.int("shmid"), Size: r.uint("size"),
			CreatorPID: r.int("cpid"), LastPID: r.int("lpid"), Attached: r.uint("nattch"),
			AttachTime: r.time("atime"), DetachTime: r.time("dtime"), ChangeTime: r.time("ctime"),
			RSS: r.uint("rss"), Swap: r.uint("swap"),
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListMsg returns every message queue the caller may see, or no records
// and an error, as [ListShm] does.
func ListMsg() ([]MsgRecord, error) {
	var out []MsgRecord
	err := readTable(procMsg, func(r *row) {
		out = append(out, MsgRecord{
			Perm: r.perm(), ID: r.int("msqid"), Bytes: r.uint("cbytes"), Messages: r.uint("qnum"),
			LastSendPID: r.int("lspid"), LastRecvPID: r.int("lrpid"),
			SendTime: r.time("stime"), RecvTime: r.time("rtime"), ChangeTime: r.time("ctime"),
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListSem returns every semaphore set the caller may see, or no records
// and an error, as [ListShm] does.
func ListSem() ([]SemRecord, error) {
	var out []SemRecord
	err := readTable(procSem, func(r *row) {
		out = append(out, SemRecord{
			Perm: r.perm(), ID: r.int("semid"), Count: r.int("nsems"),
			OpTime: r.time("otime"), ChangeTime: r.time("ctime"),
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// errBadTable is wrapped by the List functions when a table cannot be parsed.
var errBadTable = errors.New("unexpected format")

// row is one parsed line of a /proc/sysvipc table, read by column name. A
// missing or malformed column sets err; the first such error is kept.
type row struct {
	cols   map[string]int
	fields [][]byte
	err    error
}

func (r *row) field(name string) []byte {
	i, ok := r.cols[name]
	if !ok || i >= len(r.fields) {
		if r.err == nil {
			r.err = fmt.Errorf("%w: no column %q", errBadTable, name)
		}
		return nil
	}
	return r.fields[i]
}

func (r *row) int64(name string, base int) int64 {
	f := r.field(name)
	if f == nil {
		return 0
	}
	v, err := strconv.ParseInt(string(f), base, 64)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%w: column %q: %v", errBadTable, name, err)
	}
	return v
}

func (r *row) int(name string) int { return int(r.int64(name, 10)) }

func (r *row) uint(name string) uint64 {
	f := r.field(name)
	if f == nil {
		return 0
	}
	v, err := strconv.ParseUint(string(f), 10, 64)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%w: column %q: %v", errBadTable, name, err)
	}
	return v
}

func (r *row) time(name string) time.Time {
	s := r.int64(name, 10)
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

func (r *row) perm() Perm {
	return Perm{
		Key: Key(int32(r.int64("key", 10))),
		UID: uint32(r.uint("uid")), GID: uint32(r.uint("gid")),
		CUID: uint32(r.uint("cuid")), CGID: uint32(r.uint("cgid")),
		Mode: fs.FileMode(r.int64("perms", 8)) & fs.ModePerm,
	}
}

// readTable reads a /proc/sysvipc table, calling add for every data line.
// Columns are found by the header's names, so added columns do not break it.
func readTable(path string, add func(*row)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("ipc: %w", err)
	}
	defer f.Close()
	return parseTable(f, path, add)
}

func parseTable(rd io.Reader, path string, add func(*row)) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return fmt.Errorf("ipc: read %s: %w", path, err)
		}
		return fmt.Errorf("ipc: read %s: %w: empty", path, errBadTable)
	}
	cols := make(map[string]int)
	for i, name := range bytes.Fields(sc.Bytes()) {
		cols[string(name)] = i
	}
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) == 0 {
			continue
		}
		r := row{cols: cols, fields: fields}
		add(&r)
		if r.err != nil {
			return fmt.Errorf("ipc: read %s: %w", path, r.err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("ipc: read %s: %w", path, err)
	}
	return nil
}
