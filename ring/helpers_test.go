package ring

var helpers = map[string]func() int{}
