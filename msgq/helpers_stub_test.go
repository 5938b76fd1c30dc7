package msgq_test

func helperChat() int   { return 0 }
func helperDenied() int { return 0 }
