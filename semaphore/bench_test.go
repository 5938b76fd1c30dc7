//go:build go1.24

// The benchmarks use testing.B.Loop, new in Go 1.24; the module still
// builds with Go 1.22.

package semaphore

import (
	"context"
	"testing"
	"time"
)

// BenchmarkPostTryWait measures the uncontended round trip of the
// non-blocking calls: two semop system calls.
func BenchmarkPostTryWait(b *testing.B) {
	s := newSet(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Post(0); err != nil {
			b.Fatal(err)
		}
		if err := s.TryWait(0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPostWaitTimeout is BenchmarkPostTryWait with semtimedop.
func BenchmarkPostWaitTimeout(b *testing.B) {
	s := newSet(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Post(0); err != nil {
			b.Fatal(err)
		}
		if err := s.WaitTimeout(0, time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDo applies a post and a wait on two semaphores in one call.
func BenchmarkDo(b *testing.B) {
	s := newSet(b, 2)
	if err := s.Post(0); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		from, to := uint16(i%2), uint16((i+1)%2)
		if err := s.Do(ctx, Op{Num: from, Delta: -1}, Op{Num: to, Delta: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPingPong measures a wake-up across goroutines on different
// threads: each round trip is two posts and two sleeping waits.
func BenchmarkPingPong(b *testing.B) {
	s := newSet(b, 2)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		for {
			if err := s.Wait(ctx, 0); err != nil {
				done <- err
				return
			}
			if err := s.Post(1); err != nil {
				done <- err
				return
			}
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Post(0); err != nil {
			b.Fatal(err)
		}
		if err := s.Wait(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := s.Remove(); err != nil {
		b.Fatal(err)
	}
	<-done
}
