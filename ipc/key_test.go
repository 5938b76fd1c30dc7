package ipc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// ftokFiles returns existing files to derive keys from: new files in a
// temporary directory (consecutive inodes) and a few elsewhere, on other
// file systems.
func ftokFiles(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i := range 5 {
		p := filepath.Join(dir, fmt.Sprintf("file%d", i))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	paths = append(paths, dir)
	for _, p := range []string{"/", "/dev/null", "/proc/version"} {
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, p)
		}
	}
	if exe, err := os.Executable(); err == nil {
		paths = append(paths, exe)
	}
	return paths
}

// ftokIDs are project ids that exercise every bit of the top byte,
// including the one that makes the key negative.
var ftokIDs = []byte{1, 'A', 0x7f, 0x80, 0xab, 0xff}

func TestFtokFormula(t *testing.T) {
	for _, path := range ftokFiles(t) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		for _, id := range ftokIDs {
			key, err := Ftok(path, id)
			if err != nil {
				t.Fatalf("Ftok(%s, %#x): %v", path, id, err)
			}
			// ftok(3): low 16 bits of st_ino, low 8 bits of st_dev,
			// then the project id in the top byte.
			want := uint32(st.Ino&0xffff) | uint32(st.Dev&0xff)<<16 | uint32(id)<<24
			if uint32(key) != want {
				t.Errorf("Ftok(%s, %#x) = %v, want 0x%08x", path, id, key, want)
			}
			if again, _ := Ftok(path, id); again != key {
				t.Errorf("Ftok(%s, %#x) changed from %v to %v", path, id, key, again)
			}
		}
	}
}

// ftokC prints ftok(argv[i], atoi(argv[i+1])) for each pair of arguments.
const ftokC = `#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>

int main(int argc, char **argv) {
	for (int i = 1; i + 1 < argc; i += 2) {
		key_t k = ftok(argv[i], atoi(argv[i + 1]));
		if (k == (key_t)-1) {
			perror(argv[i]);
			return 1;
		}
		printf("%d\n", (int)k);
	}
	return 0;
}
`

// TestFtokGlibc compares Ftok with the C library's ftok(3), called by a
// program built here.
func TestFtokGlibc(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc:", err)
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "ftok.c"), filepath.Join(dir, "ftok")
	if err := os.WriteFile(src, []byte(ftokC), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}

	type pair struct {
		path string
		id   byte
	}
	var pairs []pair
	var args []string
	for _, path := range ftokFiles(t) {
		for _, id := range ftokIDs {
			pairs = append(pairs, pair{path, id})
			args = append(args, path, strconv.Itoa(int(id)))
		}
	}
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("ftok program: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(pairs) {
		t.Fatalf("ftok program printed %d keys for %d pairs", len(lines), len(pairs))
	}
	for i, p := range pairs {
		c, err := strconv.ParseInt(lines[i], 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Ftok(p.path, p.id)
		if err != nil {
			t.Fatal(err)
		}
		if got != Key(c) {
			t.Errorf("Ftok(%s, %#x) = %v, C ftok = %v", p.path, p.id, got, Key(c))
		}
	}
}

func TestFtokErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := Ftok(missing, 'x')
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Ftok(missing file): got %v, want fs.ErrNotExist", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "ftok" || pe.Path != missing {
		t.Errorf("Ftok(missing file): got %#v, want a *fs.PathError for ftok of %s", err, missing)
	}

	existing := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(existing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{existing, missing} {
		key, err := Ftok(path, 0)
		if err == nil {
			t.Errorf("Ftok(%s, 0) = %v, want an error", path, key)
		} else if !strings.Contains(err.Error(), "0") || !strings.Contains(err.Error(), path) {
			t.Errorf("Ftok(%s, 0): error %q does not name the path and id", path, err)
		}
	}
}

func TestKeyString(t *testing.T) {
	for _, tc := range []struct {
		key  Key
		want string
	}{
		{Private, "0x00000000"},
		{1, "0x00000001"},
		{0x1234, "0x00001234"},
		{0x7fffffff, "0x7fffffff"},
		{-1, "0xffffffff"},
		{-2, "0xfffffffe"},
		{-0x80000000, "0x80000000"},
		{Key(int32(-1951535091)), "0x8badf00d"},
	} {
		if got := tc.key.String(); got != tc.want {
			t.Errorf("Key(%d).String() = %q, want %q", int32(tc.key), got, tc.want)
		}
		if got := fmt.Sprint(tc.key); got != tc.want {
			t.Errorf("fmt.Sprint(Key(%d)) = %q, want %q", int32(tc.key), got, tc.want)
		}
	}
}
