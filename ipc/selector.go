package ipc

import "fmt"

// Selector says which message a receive takes, with the meaning of
// msgrcv(2)'s msgtyp: [AnyType], [OfType], [UpToType] or [ExceptType].
// The zero value is AnyType. Message types are positive; a Selector made
// with a type below 1 is not valid (see [Selector.Valid]). It is shared by
// the msgq package (kernel message queues) and the ring package (rings
// created for selective receive), so a receive loop moves between them
// unchanged. A Selector is a small value; copy it freely.
type Selector struct {
	kind SelectorKind
	typ  int64
}

// SelectorKind is the kind of a [Selector].
type SelectorKind uint8

// The kinds of Selector.
const (
	SelectAny    SelectorKind = iota // the oldest message, whatever its type (msgtyp 0)
	SelectType                       // the oldest message of one type (msgtyp t)
	SelectUpTo                       // the oldest of the lowest type ≤ t (msgtyp -t)
	SelectExcept                     // the oldest message of another type (msgtyp t, MSG_EXCEPT)
)

// AnyType selects the oldest message, whatever its type.
func AnyType() Selector { return Selector{} }

// OfType selects the oldest message of type t.
func OfType(t int64) Selector { return Selector{SelectType, t} }

// UpToType selects, among the messages whose type is at most t, the oldest
// of those with the lowest type: with messages of types 3, 1, 2, 1 in that
// order, UpToType(2) takes the first 1, and so does UpToType(5). It makes
// the type a priority, lowest first.
func UpToType(t int64) Selector { return Selector{SelectUpTo, t} }

// ExceptType selects the oldest message whose type is not t.
func ExceptType(t int64) Selector { return Selector{SelectExcept, t} }

// Kind returns the selector's kind.
func (s Selector) Kind() SelectorKind { return s.kind }

// Type returns the type the selector was made with; 0 for AnyType.
func (s Selector) Type() int64 { return s.typ }

// Valid reports whether the selector can select anything by msgrcv's
// rules: AnyType, or a type of at least 1.
func (s Selector) Valid() bool { return s.kind == SelectAny || s.kind <= SelectExcept && s.typ > 0 }

// Matches reports whether a message of type typ is one the selector may
// take. For UpToType it is the bound only: which of the matching messages
// comes first (the lowest type, then the oldest) is the receiver's choice.
func (s Selector) Matches(typ int64) bool {
	switch s.kind {
	case SelectType:
		return typ == s.typ
	case SelectUpTo:
		return typ <= s.typ
	case SelectExcept:
		return typ != s.typ
	}
	return true
}

// String describes the selector as msgq's constructors make it: "Any()",
// "Type(3)", "UpTo(3)" or "Except(3)".
func (s Selector) String() string {
	switch s.kind {
	case SelectType:
		return fmt.Sprintf("Type(%d)", s.typ)
	case SelectUpTo:
		return fmt.Sprintf("UpTo(%d)", s.typ)
	case SelectExcept:
		return fmt.Sprintf("Except(%d)", s.typ)
	}
	return "Any()"
}
