package label

import "testing"

// The full parsing and matching tables live with the emulator's tests
// (bridge/jenkinstest), which check them over HTTP as Jenkins answers;
// these cover what the bridge relies on directly.
func TestAtomsOfAnExpressionTheBridgeRegisters(t *testing.T) {
	e, err := Parse(`bare-precise || "bare trusty" && !windows`)
	if err != nil {
		t.Fatal(err)
	}
	got := e.Atoms()
	want := []string{"bare-precise", "bare trusty", "windows"}
	if len(got) != len(want) {
		t.Fatalf("atoms %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("atoms %q, want %q", got, want)
		}
	}
	if !e.Matches(map[string]bool{"bare-precise": true}) || e.Matches(map[string]bool{"bare trusty": true, "windows": true}) {
		t.Fatal("matching is wrong")
	}
	if IsAtom(e) || !IsAtom(Atom("x")) {
		t.Fatal("IsAtom")
	}
	if l := Lenient("a &&"); !IsAtom(l) || l.String() != `"a &&"` {
		t.Fatalf("Lenient of a broken expression: %v", l)
	}
}
