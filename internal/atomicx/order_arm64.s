//go:build !race

#include "textflag.h"

// func fence()
TEXT ·fence(SB), NOSPLIT, $0-0
	DMB $0xb // ISH: full barrier, inner shareable domain
	RET

// func pause()
TEXT ·pause(SB), NOSPLIT, $0-0
	YIELD
	RET
