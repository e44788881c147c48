package protocol

import (
	"strings"
	"testing"

	g2 "github.com/appscode/g2/pkg/runtime"
)

// appscode/g2 numbers packet types 1-42 in its own table; ours must agree.
func TestTypeNumbersMatchG2(t *testing.T) {
	pairs := map[Type]g2.PT{
		CanDo: g2.PT_CanDo, PreSleep: g2.PT_PreSleep, Noop: g2.PT_Noop, SubmitJob: g2.PT_SubmitJob,
		JobCreated: g2.PT_JobCreated, GrabJob: g2.PT_GrabJob, WorkStatus: g2.PT_WorkStatus,
		WorkComplete: g2.PT_WorkComplete, EchoReq: g2.PT_EchoReq, Error: g2.PT_Error,
		SetClientID: g2.PT_SetClientId, CanDoTimeout: g2.PT_CanDoTimeout, AllYours: g2.PT_AllYours,
		WorkException: g2.PT_WorkException, OptionReq: g2.PT_OptionReq, GrabJobUniq: g2.PT_GrabJobUniq,
		JobAssignUniq: g2.PT_JobAssignUniq, SubmitJobSched: g2.PT_SubmitJobSched, SubmitJobEpoch: g2.PT_SubmitJobEpoch,
		SubmitReduceJob: g2.PT_SubmitReduceJob, GrabJobAll: g2.PT_GrabJobAll, JobAssignAll: g2.PT_JobAssignAll,
		GetStatusUnique: g2.PT_GetStatusUnique, StatusResUnique: g2.PT_StatusResUnique,
	}
	for ours, theirs := range pairs {
		if uint32(ours) != theirs.Uint32() {
			t.Errorf("%s is %d here, %d in g2", ours, ours, theirs.Uint32())
		}
	}
	// Every type g2 knows by name has our name, spelled the same way.
	for typ := CanDo; typ <= SubmitJobEpoch; typ++ {
		if typ == 5 {
			continue
		}
		want := strings.ReplaceAll(typ.String(), "_", "")
		got := strings.ToUpper(strings.TrimPrefix(g2.PT(typ).String(), "PT_"))
		if got != want {
			t.Errorf("type %d: %s here, %s in g2", typ, typ, g2.PT(typ))
		}
	}
}
