package protocol

import "testing"

// gearmand's PROTOCOL file lists 30 request types; the other 12 of 1-42
// only ever come from a server.
func TestIsRequest(t *testing.T) {
	var req, res []string
	for typ := CanDo; typ <= MaxType; typ++ {
		if typ.IsRequest() {
			req = append(req, typ.String())
		} else {
			res = append(res, typ.String())
		}
	}
	if len(req) != 30 || len(res) != 12 {
		t.Fatalf("%d request types, %d response-only: %v", len(req), len(res), res)
	}
	for _, typ := range []Type{Noop, JobCreated, NoJob, JobAssign, EchoRes, Error, StatusRes, OptionRes, JobAssignUniq, JobAssignAll, StatusResUnique, unused5, 0, MaxType + 1} {
		if typ.IsRequest() {
			t.Errorf("%s is not a request", typ)
		}
	}
}
