//go:build !race

#include "textflag.h"

// func storeRelease(p *atomic.Uint64, v uint64)
// A plain MOV: on amd64 every store has release semantics (TSO).
TEXT ·storeRelease(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ v+8(FP), BX
	MOVQ BX, 0(AX)
	RET

// func storeRelease32(p *atomic.Uint32, v uint32)
TEXT ·storeRelease32(SB), NOSPLIT, $0-12
	MOVQ p+0(FP), AX
	MOVL v+8(FP), BX
	MOVL BX, 0(AX)
	RET

// func storeLoad32(p *atomic.Uint32, v uint32, q *atomic.Uint32, fence bool) uint32
// TSO may take the load before the store drains, unless a locked
// instruction sits between them.
TEXT ·storeLoad32(SB), NOSPLIT, $0-36
	MOVQ p+0(FP), AX
	MOVL v+8(FP), BX
	MOVQ q+16(FP), CX
	MOVL BX, 0(AX)
	CMPB fence+24(FP), $0
	JEQ  load
	LOCK
	ORQ  $0, 0(SP)
load:
	MOVL 0(CX), DX
	MOVL DX, ret+32(FP)
	RET

// func fence()
// A locked read-modify-write of the stack top is a full barrier and is
// cheaper than MFENCE on most cores.
TEXT ·fence(SB), NOSPLIT, $0-0
	LOCK
	ORQ $0, 0(SP)
	RET

// func pause()
TEXT ·pause(SB), NOSPLIT, $0-0
	PAUSE
	RET
