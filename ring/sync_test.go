package ring

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestSyncLabels checks the ordering comments of the package's code: every
// SYNC(label) names one half of a pair, so each label must appear at least
// twice, and at least once at a release (or seq-cst) side and once at an
// acquire side or a barrier.
func TestSyncLabels(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	label := regexp.MustCompile(`SYNC\(([a-z-]+)\)`)
	type use struct {
		count          int
		release, other bool
		where          []string
	}
	uses := map[string]*use{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(b), "\n") {
			for _, m := range label.FindAllStringSubmatch(line, -1) {
				u := uses[m[1]]
				if u == nil {
					u = &use{}
					uses[m[1]] = u
				}
				u.count++
				u.where = append(u.where, f+":"+itoa(n+1))
				lower := strings.ToLower(line)
				if strings.Contains(lower, "release") || strings.Contains(lower, "seq-cst") {
					u.release = true
				}
				if strings.Contains(lower, "acquire") || strings.Contains(lower, "barrier") ||
					strings.Contains(lower, "pairs with") || strings.Contains(lower, "load") {
					u.other = true
				}
			}
		}
	}
	if len(uses) == 0 {
		t.Fatal("no SYNC labels found")
	}
	var names []string
	for l := range uses {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, l := range names {
		u := uses[l]
		if u.count < 2 {
			t.Errorf("SYNC(%s) appears once (%v): its partner is not labelled", l, u.where)
		}
		t.Logf("SYNC(%s): %d uses", l, u.count)
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for n >= 10 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	b[i] = byte('0' + n)
	return string(b[i:])
}
