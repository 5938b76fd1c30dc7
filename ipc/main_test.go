package ipc

import (
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
)

// TestMain fails the run if an object a test made outlives it. The ipc
// tests start no helper processes.
func TestMain(m *testing.M) { ipctest.Main(m, nil) }
