package observe

import "testing"

func TestTraceParent(t *testing.T) {
	for v, want := range map[string]bool{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": true,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01": false,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": false,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01": false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7":    false,
	} {
		if ValidTraceParent(v) != want {
			t.Errorf("ValidTraceParent(%q) = %v", v, !want)
		}
	}
	a, b := NewTraceParent(), NewTraceParent()
	if !ValidTraceParent(a) || a == b {
		t.Fatalf("NewTraceParent gave %q and %q", a, b)
	}
}
