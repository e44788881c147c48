// Package protocol is the Gearman wire codec: binary packet framing for
// packet types 1-42 with size checks before any allocation, and the text
// admin line format. It knows nothing about jobs or connections.
package protocol

import "strconv"

// Type is a binary packet type.
type Type uint32

// Packet types, numbered as in gearmand's PROTOCOL file.
const (
	CanDo                     Type = 1
	CantDo                    Type = 2
	ResetAbilities            Type = 3
	PreSleep                  Type = 4
	unused5                   Type = 5
	Noop                      Type = 6
	SubmitJob                 Type = 7
	JobCreated                Type = 8
	GrabJob                   Type = 9
	NoJob                     Type = 10
	JobAssign                 Type = 11
	WorkStatus                Type = 12
	WorkComplete              Type = 13
	WorkFail                  Type = 14
	GetStatus                 Type = 15
	EchoReq                   Type = 16
	EchoRes                   Type = 17
	SubmitJobBg               Type = 18
	Error                     Type = 19
	StatusRes                 Type = 20
	SubmitJobHigh             Type = 21
	SetClientID               Type = 22
	CanDoTimeout              Type = 23
	AllYours                  Type = 24
	WorkException             Type = 25
	OptionReq                 Type = 26
	OptionRes                 Type = 27
	WorkData                  Type = 28
	WorkWarning               Type = 29
	GrabJobUniq               Type = 30
	JobAssignUniq             Type = 31
	SubmitJobHighBg           Type = 32
	SubmitJobLow              Type = 33
	SubmitJobLowBg            Type = 34
	SubmitJobSched            Type = 35
	SubmitJobEpoch            Type = 36
	SubmitReduceJob           Type = 37
	SubmitReduceJobBackground Type = 38
	GrabJobAll                Type = 39
	JobAssignAll              Type = 40
	GetStatusUnique           Type = 41
	StatusResUnique           Type = 42

	// MaxType is the highest packet type gearmand 1.1.20 knows.
	MaxType = StatusResUnique
)

// typeInfo is gearmand's parse table (libgearman/command.cc) in the form we
// need: how many arguments a payload splits into, counting the final one
// that runs to the end of the payload (it may contain NULs).
var typeInfo = [MaxType + 1]struct {
	name  string
	nargs int
}{
	CanDo:                     {"CAN_DO", 1},
	CantDo:                    {"CANT_DO", 1},
	ResetAbilities:            {"RESET_ABILITIES", 0},
	PreSleep:                  {"PRE_SLEEP", 0},
	unused5:                   {"UNUSED", 0},
	Noop:                      {"NOOP", 0},
	SubmitJob:                 {"SUBMIT_JOB", 3},
	JobCreated:                {"JOB_CREATED", 1},
	GrabJob:                   {"GRAB_JOB", 0},
	NoJob:                     {"NO_JOB", 0},
	JobAssign:                 {"JOB_ASSIGN", 3},
	WorkStatus:                {"WORK_STATUS", 3},
	WorkComplete:              {"WORK_COMPLETE", 2},
	WorkFail:                  {"WORK_FAIL", 1},
	GetStatus:                 {"GET_STATUS", 1},
	EchoReq:                   {"ECHO_REQ", 1},
	EchoRes:                   {"ECHO_RES", 1},
	SubmitJobBg:               {"SUBMIT_JOB_BG", 3},
	Error:                     {"ERROR", 2},
	StatusRes:                 {"STATUS_RES", 5},
	SubmitJobHigh:             {"SUBMIT_JOB_HIGH", 3},
	SetClientID:               {"SET_CLIENT_ID", 1},
	CanDoTimeout:              {"CAN_DO_TIMEOUT", 2},
	AllYours:                  {"ALL_YOURS", 0},
	WorkException:             {"WORK_EXCEPTION", 2},
	OptionReq:                 {"OPTION_REQ", 1},
	OptionRes:                 {"OPTION_RES", 1},
	WorkData:                  {"WORK_DATA", 2},
	WorkWarning:               {"WORK_WARNING", 2},
	GrabJobUniq:               {"GRAB_JOB_UNIQ", 0},
	JobAssignUniq:             {"JOB_ASSIGN_UNIQ", 4},
	SubmitJobHighBg:           {"SUBMIT_JOB_HIGH_BG", 3},
	SubmitJobLow:              {"SUBMIT_JOB_LOW", 3},
	SubmitJobLowBg:            {"SUBMIT_JOB_LOW_BG", 3},
	SubmitJobSched:            {"SUBMIT_JOB_SCHED", 8},
	SubmitJobEpoch:            {"SUBMIT_JOB_EPOCH", 4},
	SubmitReduceJob:           {"SUBMIT_REDUCE_JOB", 5},
	SubmitReduceJobBackground: {"SUBMIT_REDUCE_JOB_BACKGROUND", 5},
	GrabJobAll:                {"GRAB_JOB_ALL", 0},
	JobAssignAll:              {"JOB_ASSIGN_ALL", 5},
	GetStatusUnique:           {"GET_STATUS_UNIQUE", 1},
	StatusResUnique:           {"STATUS_RES_UNIQUE", 6},
}

// Valid reports whether t is a packet type gearmand knows (1-42).
func (t Type) Valid() bool { return t >= CanDo && t <= MaxType }

// NumArgs is the number of arguments t's payload splits into; the last one
// runs to the end of the payload.
func (t Type) NumArgs() int {
	if !t.Valid() {
		return 0
	}
	return typeInfo[t].nargs
}

func (t Type) String() string {
	if !t.Valid() {
		return "TYPE_" + strconv.FormatUint(uint64(t), 10)
	}
	return typeInfo[t].name
}
