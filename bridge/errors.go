package bridge

import "errors"

var (
	// ErrConfig is returned by [Config.Validate], [LoadConfig] and [Run] for
	// a configuration that cannot work: no direction, a missing ring or
	// subject, an impossible size.
	ErrConfig = errors.New("bridge: invalid configuration")

	// ErrNoType is counted (and with JetStream, the message terminated) when
	// an inbound message has no usable type: no Shmring-Type header, a
	// subject whose last token is not a positive integer, and no
	// [InboundConfig.DefaultType].
	ErrNoType = errors.New("bridge: message has no type")
)
