package ipc

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/ipctest"
)

// Sample tables in the kernel's format (ipc/shm.c, msg.c, sem.c): a
// header of column names, then one line per object, right-aligned.
const (
	sampleShm = `       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
2130711092      32784   640                 10000 11724 11725      1  1000   100     0     0 1795306623          0 1795306600                  8192                     0
         0          5  1600                  4096   300   301      2     0     0  1001  1002 1700000000 1700000001 1700000002                  4096                 12288
`
	sampleMsg = `       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime
-1951535091          0   620           5          1 11724     0     0     0     0     0 1795306623          0 1795306620
`
	sampleSem = `       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime
         0          3   600          3    10    20    30    40          0 1795306623
`
)

// wantShm is sampleShm, parsed.
var wantShm = []ShmRecord{
	{
		Perm: Perm{Key: 0x7f001234, UID: 1000, GID: 100, Mode: 0o640},
		ID:   32784, Size: 10000, CreatorPID: 11724, LastPID: 11725, Attached: 1,
		AttachTime: time.Unix(1795306623, 0), ChangeTime: time.Unix(1795306600, 0),
		RSS: 8192,
	},
	{
		// 01600: SHM_DEST is not a permission bit and is dropped.
		Perm: Perm{Key: Private, CUID: 1001, CGID: 1002, Mode: 0o600},
		ID:   5, Size: 4096, CreatorPID: 300, LastPID: 301, Attached: 2,
		AttachTime: time.Unix(1700000000, 0), DetachTime: time.Unix(1700000001, 0),
		ChangeTime: time.Unix(1700000002, 0), RSS: 4096, Swap: 12288,
	},
}

// useTable points the List functions' table *path at a file holding text
// for the rest of the test.
func useTable(t *testing.T, path *string, text string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), filepath.Base(*path))
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	old := *path
	*path = file
	t.Cleanup(func() { *path = old })
}

func TestListSamples(t *testing.T) {
	useTable(t, &procShm, sampleShm)
	useTable(t, &procMsg, sampleMsg)
	useTable(t, &procSem, sampleSem)

	shm, err := ListShm()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shm, wantShm) {
		t.Errorf("ListShm:\n got %+v\nwant %+v", shm, wantShm)
	}

	msg, err := ListMsg()
	if err != nil {
		t.Fatal(err)
	}
	wantMsg := []MsgRecord{{
		Perm: Perm{Key: Key(int32(-1951535091)), Mode: 0o620},
		ID:   0, Bytes: 5, Messages: 1, LastSendPID: 11724,
		SendTime: time.Unix(1795306623, 0), ChangeTime: time.Unix(1795306620, 0),
	}}
	if !reflect.DeepEqual(msg, wantMsg) {
		t.Errorf("ListMsg:\n got %+v\nwant %+v", msg, wantMsg)
	}
	if msg[0].Key.String() != "0x8badf00d" {
		t.Errorf("negative key read as %v", msg[0].Key)
	}

	sem, err := ListSem()
	if err != nil {
		t.Fatal(err)
	}
	wantSem := []SemRecord{{
		Perm: Perm{UID: 10, GID: 20, CUID: 30, CGID: 40, Mode: 0o600},
		ID:   3, Count: 3, ChangeTime: time.Unix(1795306623, 0),
	}}
	if !reflect.DeepEqual(sem, wantSem) {
		t.Errorf("ListSem:\n got %+v\nwant %+v", sem, wantSem)
	}
}

// reorder rewrites a table with its columns in reverse order, and with an
// extra column the parser does not know.
func reorder(table string) string {
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimSpace(table), "\n") {
		f := strings.Fields(line)
		for l, r := 0, len(f)-1; l < r; l, r = l+1, r-1 {
			f[l], f[r] = f[r], f[l]
		}
		if i == 0 {
			f = append([]string{"future"}, f...)
		} else {
			f = append([]string{"99"}, f...)
		}
		b.WriteString(strings.Join(f, "   ") + "\n")
	}
	return b.String()
}

// TestListColumnOrder checks that columns are found by the header's names,
// not by position.
func TestListColumnOrder(t *testing.T) {
	useTable(t, &procShm, reorder(sampleShm))
	shm, err := ListShm()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shm, wantShm) {
		t.Errorf("ListShm of a reordered table:\n got %+v\nwant %+v", shm, wantShm)
	}
}

func TestParseTable(t *testing.T) {
	// Blank lines are skipped; columns are read by name.
	text := "  b    a c\n\n 1  -2 0777\n\n 3 4 0\n"
	type rec struct{ a, b, c int64 }
	var got []rec
	err := parseTable(strings.NewReader(text), "sample", func(r *row) {
		got = append(got, rec{r.int64("a", 10), r.int64("b", 10), r.int64("c", 8)})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{{-2, 1, 0o777}, {4, 3, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	// A header alone is an empty table.
	n := 0
	if err := parseTable(strings.NewReader(strings.SplitAfter(sampleShm, "\n")[0]), "sample", func(*row) { n++ }); err != nil || n != 0 {
		t.Errorf("header only: %d rows, error %v", n, err)
	}
}

// TestListMalformed checks that a line that cannot be parsed makes the
// List function fail, rather than return a record with zeros in it.
func TestListMalformed(t *testing.T) {
	lines := strings.SplitAfter(sampleShm, "\n")
	header, good := lines[0], lines[1]
	for name, text := range map[string]string{
		"empty":          "",
		"not a number":   header + strings.Replace(good, "10000", "10k00", 1),
		"short line":     header + good + strings.Join(strings.Fields(good)[:8], " ") + "\n",
		"missing column": strings.Replace(header, "nattch", "nattached", 1) + good,
		"negative size":  header + strings.Replace(good, " 10000", "-10000", 1),
		"octal perms":    header + strings.Replace(good, " 640 ", " 698 ", 1),
		"huge pid":       header + strings.Replace(good, "11724", "99999999999999999999", 1),
	} {
		t.Run(name, func(t *testing.T) {
			useTable(t, &procShm, text)
			list, err := ListShm()
			if err == nil {
				t.Fatalf("ListShm = %+v, want an error", list)
			}
			if list != nil {
				t.Errorf("ListShm returned records with its error: %+v", list)
			}
			if name != "empty" && !errors.Is(err, errBadTable) {
				t.Errorf("error %v does not wrap errBadTable", err)
			}
			if !strings.Contains(err.Error(), procShm) {
				t.Errorf("error %q does not name the file", err)
			}
			t.Log(err)
		})
	}

	useTable(t, &procShm, sampleShm)
	procShm += ".missing"
	if _, err := ListShm(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ListShm of a missing table: got %v, want fs.ErrNotExist", err)
	}
}

// keyFile returns an ftok key, with the top bit set, for a new file.
func keyFile(t *testing.T, id byte) Key {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := Ftok(path, id)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// skipIfUnsupported skips the test if the kernel has no System V IPC.
func skipIfUnsupported(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("no System V IPC:", err)
	}
}

func TestListShmLive(t *testing.T) {
	key := keyFile(t, 0xc5) // a negative key
	id, err := unix.SysvShmGet(int(key), 12345, unix.IPC_CREAT|unix.IPC_EXCL|0o640)
	skipIfUnsupported(t, err)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, id)
	t.Cleanup(func() {
		if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
			t.Error(err)
		}
	})
	b, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmDetach(b)

	find := func() ShmRecord {
		t.Helper()
		list, err := ListShm()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list {
			if r.ID == id {
				return r
			}
		}
		t.Fatalf("ListShm has no id %d", id)
		return ShmRecord{}
	}
	r := find()
	pid, uid, gid := os.Getpid(), uint32(os.Geteuid()), uint32(os.Getegid())
	want := Perm{Key: key, UID: uid, GID: gid, CUID: uid, CGID: gid, Mode: 0o640}
	if r.Perm != want || r.Size != 12345 || r.CreatorPID != pid || r.LastPID != pid || r.Attached != 1 {
		t.Errorf("ListShm has %+v, want %+v, size 12345, cpid and lpid %d, 1 attach", r, want, pid)
	}
	if r.AttachTime.IsZero() || !r.DetachTime.IsZero() || r.ChangeTime.IsZero() {
		t.Errorf("times: attach %v detach %v change %v", r.AttachTime, r.DetachTime, r.ChangeTime)
	}

	// ipcs(1) prints the key as Key.String does.
	if ipcs, err := exec.LookPath("ipcs"); err == nil {
		out, err := exec.Command(ipcs, "-m").Output()
		if err != nil {
			t.Fatalf("ipcs: %v", err)
		}
		found := false
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && f[1] == strconv.Itoa(id) {
				found = true
				if f[0] != key.String() {
					t.Errorf("ipcs prints key %s, Key.String %s", f[0], key)
				}
			}
		}
		if !found {
			t.Errorf("ipcs -m does not list id %d:\n%s", id, out)
		}
	}
}

func TestListMsgLive(t *testing.T) {
	key := keyFile(t, 'q')
	r1, _, errno := unix.Syscall(unix.SYS_MSGGET, uintptr(key), unix.IPC_CREAT|unix.IPC_EXCL|0o600, 0)
	if errno != 0 {
		skipIfUnsupported(t, errno)
		t.Fatal(errno)
	}
	id := int(r1)
	ipctest.Track(t, ipctest.Msg, id)
	t.Cleanup(func() {
		if _, _, errno := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), unix.IPC_RMID, 0); errno != 0 {
			t.Error(errno)
		}
	})
	list, err := ListMsg()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		if r.ID == id {
			if r.Key != key || r.Mode != 0o600 || r.Messages != 0 || r.Bytes != 0 || r.ChangeTime.IsZero() {
				t.Errorf("ListMsg has %+v, want key %v, mode 0600, empty", r, key)
			}
			return
		}
	}
	t.Fatalf("ListMsg has no id %d", id)
}

func TestListSemLive(t *testing.T) {
	key := keyFile(t, 's')
	r1, _, errno := unix.Syscall(unix.SYS_SEMGET, uintptr(key), 3, unix.IPC_CREAT|unix.IPC_EXCL|0o640)
	if errno != 0 {
		skipIfUnsupported(t, errno)
		t.Fatal(errno)
	}
	id := int(r1)
	ipctest.Track(t, ipctest.Sem, id)
	t.Cleanup(func() {
		if _, _, errno := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, unix.IPC_RMID, 0, 0, 0); errno != 0 {
			t.Error(errno)
		}
	})
	list, err := ListSem()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		if r.ID == id {
			if r.Key != key || r.Mode != 0o640 || r.Count != 3 || !r.OpTime.IsZero() || r.ChangeTime.IsZero() {
				t.Errorf("ListSem has %+v, want key %v, mode 0640, 3 semaphores, no semop yet", r, key)
			}
			return
		}
	}
	t.Fatalf("ListSem has no id %d", id)
}
