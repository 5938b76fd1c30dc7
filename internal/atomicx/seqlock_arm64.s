//go:build arm64 && gc && !race

#include "textflag.h"

// func storeStore()
TEXT ·storeStore(SB), NOSPLIT, $0-0
	DMB $0xa // ISHST: stores before, stores after
	RET

// func loadLoad()
TEXT ·loadLoad(SB), NOSPLIT, $0-0
	DMB $0x9 // ISHLD: loads before, loads and stores after
	RET
