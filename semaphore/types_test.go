package semaphore

import (
	"runtime"
	"testing"
	"unsafe"
)

// TestTypeSizes checks the generated kernel structures against the sizes
// and offsets the kernel's headers give them: struct sembuf in
// <linux/sem.h>, struct ipc64_perm in <asm-generic/ipcbuf.h>, and struct
// semid64_ds in <asm/sembuf.h> (amd64, which pads each time field) or
// <asm-generic/sembuf.h> (arm64).
func TestTypeSizes(t *testing.T) {
	check := func(name string, got, want uintptr) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	check("sizeof(sembuf)", unsafe.Sizeof(sembuf{}), 6)
	check("sizeof(ipc64_perm)", unsafe.Sizeof(ipc64Perm{}), 48)
	check("offsetof(ipc64_perm.mode)", unsafe.Offsetof(ipc64Perm{}.Mode), 20)
	check("offsetof(ipc64_perm.seq)", unsafe.Offsetof(ipc64Perm{}.Seq), 24)

	var ds semid64DS
	switch runtime.GOARCH {
	case "amd64":
		check("sizeof(semid64_ds)", unsafe.Sizeof(ds), 104)
		check("offsetof(sem_ctime)", unsafe.Offsetof(ds.Ctime), 64)
		check("offsetof(sem_nsems)", unsafe.Offsetof(ds.Nsems), 80)
	case "arm64":
		check("sizeof(semid64_ds)", unsafe.Sizeof(ds), 88)
		check("offsetof(sem_ctime)", unsafe.Offsetof(ds.Ctime), 56)
		check("offsetof(sem_nsems)", unsafe.Offsetof(ds.Nsems), 64)
	default:
		t.Fatalf("no expected layout for %s", runtime.GOARCH)
	}
	check("offsetof(sem_otime)", unsafe.Offsetof(ds.Otime), 48)
}
