package protocol

// requestTypes are the packet types a client or worker sends to a server
// (gearmand's PROTOCOL file, "REQ" in its direction column). The others
// (NOOP, JOB_CREATED, NO_JOB, JOB_ASSIGN*, ECHO_RES, ERROR, STATUS_RES*,
// OPTION_RES and the unused type 5) only ever travel from the server.
var requestTypes = [MaxType + 1]bool{
	CanDo: true, CantDo: true, ResetAbilities: true, PreSleep: true,
	SubmitJob: true, GrabJob: true, WorkStatus: true, WorkComplete: true,
	WorkFail: true, GetStatus: true, EchoReq: true, SubmitJobBg: true,
	SubmitJobHigh: true, SetClientID: true, CanDoTimeout: true, AllYours: true,
	WorkException: true, OptionReq: true, WorkData: true, WorkWarning: true,
	GrabJobUniq: true, SubmitJobHighBg: true, SubmitJobLow: true, SubmitJobLowBg: true,
	SubmitJobSched: true, SubmitJobEpoch: true, SubmitReduceJob: true,
	SubmitReduceJobBackground: true, GrabJobAll: true, GetStatusUnique: true,
}

// IsRequest reports whether t is a type that a client or worker sends to a
// server.
func (t Type) IsRequest() bool { return t.Valid() && requestTypes[t] }
