package protocol

import "strings"

// AdminFields splits an admin text line as gearmand does: on single spaces,
// with runs of spaces collapsed. The command word is matched by the caller
// case-insensitively.
func AdminFields(line []byte) []string {
	var fields []string
	for _, f := range strings.Split(string(line), " ") {
		if f != "" {
			fields = append(fields, f)
		}
	}
	return fields
}
