package store

import (
	"strconv"
	"strings"
)

// handleID returns the job ID at the end of a handle such as "H:host:42".
func handleID(handle string) (uint64, bool) {
	i := strings.LastIndexByte(handle, ':')
	if i < 0 {
		return 0, false
	}
	id, err := strconv.ParseUint(handle[i+1:], 10, 64)
	return id, err == nil
}
