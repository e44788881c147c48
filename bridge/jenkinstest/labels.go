package jenkinstest

import "github.com/gearbridge/gearbridge/bridge/label"

// Label is a parsed Jenkins label expression. The emulator uses the same
// parser as the bridge (package label), whose own tables test it; the
// emulator's HTTP tests check the matching as Jenkins would answer it.
type Label = label.Expr

// ParseLabel parses a label expression; an empty one is an error.
func ParseLabel(expr string) (Label, error) { return label.Parse(expr) }

// labelFor mirrors Jenkins.getLabel: an expression that does not parse is
// taken as one atom spelled like the whole string.
func labelFor(expr string) Label { return label.Lenient(expr) }
