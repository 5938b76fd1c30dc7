package ipc

import "testing"

func TestSelector(t *testing.T) {
	for _, tc := range []struct {
		sel   Selector
		valid bool
		match []int64 // of types 1..5, those it matches
		str   string
	}{
		{AnyType(), true, []int64{1, 2, 3, 4, 5}, "Any()"},
		{Selector{}, true, []int64{1, 2, 3, 4, 5}, "Any()"},
		{OfType(3), true, []int64{3}, "Type(3)"},
		{UpToType(2), true, []int64{1, 2}, "UpTo(2)"},
		{ExceptType(4), true, []int64{1, 2, 3, 5}, "Except(4)"},
		{OfType(0), false, nil, "Type(0)"},
		{UpToType(-1), false, nil, "UpTo(-1)"},
		{ExceptType(0), false, []int64{1, 2, 3, 4, 5}, "Except(0)"},
	} {
		if tc.sel.Valid() != tc.valid || tc.sel.String() != tc.str {
			t.Errorf("%v: valid %v, string %q", tc.sel, tc.sel.Valid(), tc.sel.String())
		}
		var got []int64
		for typ := int64(1); typ <= 5; typ++ {
			if tc.sel.Matches(typ) {
				got = append(got, typ)
			}
		}
		if len(got) != len(tc.match) {
			t.Errorf("%v matches %v, want %v", tc.sel, got, tc.match)
			continue
		}
		for i := range got {
			if got[i] != tc.match[i] {
				t.Errorf("%v matches %v, want %v", tc.sel, got, tc.match)
			}
		}
	}
}
