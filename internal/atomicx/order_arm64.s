//go:build !race

#include "textflag.h"

// func storeRelease(p *atomic.Uint64, v uint64)
TEXT ·storeRelease(SB), NOSPLIT, $0-16
	MOVD p+0(FP), R0
	MOVD v+8(FP), R1
	STLR R1, (R0)
	RET

// func storeRelease32(p *atomic.Uint32, v uint32)
TEXT ·storeRelease32(SB), NOSPLIT, $0-12
	MOVD p+0(FP), R0
	MOVWU v+8(FP), R1
	STLRW R1, (R0)
	RET

// func storeLoad32(p *atomic.Uint32, v uint32, q *atomic.Uint32, fence bool) uint32
// LDAR is ordered after an earlier STLR, so on arm64 the pair is a full
// store-load handshake with or without fence.
TEXT ·storeLoad32(SB), NOSPLIT, $0-36
	MOVD p+0(FP), R0
	MOVWU v+8(FP), R1
	MOVD q+16(FP), R2
	STLRW R1, (R0)
	LDARW (R2), R3
	MOVW R3, ret+32(FP)
	RET

// func fence()
TEXT ·fence(SB), NOSPLIT, $0-0
	DMB $0xb // ISH: full barrier, inner shareable domain
	RET

// func pause()
TEXT ·pause(SB), NOSPLIT, $0-0
	YIELD
	RET
