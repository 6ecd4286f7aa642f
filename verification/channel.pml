/*
 * verification/channel.pml: a Promela model of Touchstone's request/response channels between the backend and one
 * agent (issue 17 part 6). tools/verify runs it; docs/verification.md explains the abstractions and the results.
 *
 * Configurations (choose one with spin -D...):
 *   TASK      one task channel (1): a start, then the stop of a cancel on the same channel.
 *   RACE      two task channels: the start on channel 1, the stop of a cancel on channel 2.
 *   HEARTBEAT the control channel (0) alone: a run of heartbeat (blocking) queries.
 * Rules (choose with spin -D...):
 *   (default) the landed code's rules.
 *   TARGET    the rules issues 10 and 17 ask for, and the fixes this model found: all the FIX_ and HB_ rules.
 *   FIX_STOP      the agent remembers a stop for an attempt it does not have (a tombstone) and refuses or stops
 *                 the start when it comes; the backend retries a stop until "stopped" or "never will be".
 *   FIX_DEADLINE  the agent checks the delivery deadline again right before the launch, and lists an attempt
 *                 being launched as such (so the expired-start rule cannot withdraw it).
 *   FIX_KNOWN     a start of an attempt the agent already has is answered with the attempt's report even past the
 *                 request's deadline (RequestHandler.execute answers `expired` first today).
 *   HB_RULE       issue 10: a late answer (a request ID this backend sent on the channel, current epoch) is
 *                 discarded, not a desync; an unanswered request is resent with the same request ID first; the
 *                 channel is drained only on a stale epoch, a foreign request ID, or silence past the threshold.
 * Properties (each an assertion on a hidden variable named after it, so pan's message names the property; turn
 * one off with -DNO_<NAME>):
 *   p_once      an attempt is launched at most once, and never after the backend gave it up (withdrawn or
 *               requeued: a second attempt may then run elsewhere), and the backend never gives up an attempt
 *               that runs;
 *   p_stop      a stop that was decided takes effect: the attempt is not launched after the agent answered the
 *               stop, and once the system is quiet it does not run;
 *   p_deadline  no request is executed at or after its delivery deadline;
 *   p_sync      every run returns to sync: once faults and time stop, both queues are empty, nothing is held or
 *               outstanding, the epochs agree (or a sync is due), and the backend's view of the attempt is the
 *               agent's (checked when no process can move: spin's `timeout`; a deadlock is an invalid end state);
 *   p_calm      (issue 10) a drain starts only on a stale epoch, a foreign request ID, an agent ahead, or silence
 *               past the liveness threshold: never on a late answer or a single missed deadline.
 */

#ifdef TARGET
#define FIX_STOP
#define FIX_DEADLINE
#define FIX_KNOWN
#define HB_RULE
#endif

#if !defined(TASK) && !defined(RACE) && !defined(HEARTBEAT)
#define TASK
#endif

/* Fault budgets (the search is exhaustive within them). */
#ifndef NDUP
#define NDUP 2          /* duplicated (late, redelivered) messages on either queue */
#endif
#ifndef NCRASH
#define NCRASH 1        /* agent kill -9 + restart: journal and task processes survive, memory does not */
#endif
#ifndef NRESTART
#define NRESTART 1      /* backend kill -9 + restart: the event log survives, memory does not */
#endif
#ifndef MAXT
#define MAXT 6          /* abstract time: ticks 0..MAXT; the clock runs until MAXT */
#endif
#ifndef HBN
#define HBN 3           /* heartbeat queries the control loop sends (HEARTBEAT) */
#endif
#define D 2             /* delivery deadline: expiresAt = sentAt + D (--request-timeout, --heartbeat-timeout) */
#define E 1             /* execution deadline after delivery (--execution-timeout; the response is due by
                           expiresAt + E) */
#define M 1             /* ServerLink.observe's margin past deliverBy + E before an absent start is withdrawn (5 s) */
#define RS 1            /* HB_RULE: resends with the same request ID before silence counts (the liveness
                           threshold is (RS + 1) deadlines) */

#define NCH 3           /* channel 0: control (heartbeats); 1 and 2: task channels */
#define QN 4            /* request queue capacity: a send waits for room (a bound: at most QN queued) */
#define QR 6            /* response queue capacity (leftover duplicates wait there for the next call) */
#define NID 14          /* request IDs: 1 is the start's (task.dispatched), others from nextId */

mtype = { HB, START, STOP, SYNC };                                                   /* commands */
mtype = { R_HB, R_SYNCED, R_STARTED, R_STOPPED, R_UNKNOWN, R_NEVER, R_EXPIRED, R_STALE };  /* replies */

/* Attempt states as the agent reports them (TaskStatusReport.state), and the journal's launching mark. */
#define A_NONE 0        /* no report: unknown attempt */
#define A_RUN  1        /* running */
#define A_STP  2        /* stopped */
#define A_FTS  3        /* failedToStart */
#define A_LNCH 4        /* journal: attempt.launching without an outcome; listing (FIX_DEADLINE): being launched */

/* The task's row in the backend's log (TaskBoard status of attempt 1). */
#define T_DISP  0       /* dispatching: booked, start not sent */
#define T_START 1       /* starting: task.start-sending recorded */
#define T_RUN   2       /* running */
#define T_CANC  3       /* ended cancelled (stopped report, or withdrawn after a cancel) */
#define T_GONE  4       /* given up: withdrawn or failedToStart, requeued (attempt 2 may run elsewhere) */

/* Backend channel program counter (ChannelClient + its ServerLink caller). */
#define B_IDLE  0
#define B_CALL  1       /* ChannelClient.call: a sync first when one is pending */
#define B_SEND  2       /* ChannelClient.exchange: requests.send */
#define B_REC   3       /* ChannelClient.exchange: log.append(request.sent) */
#define B_AWAIT 4       /* ChannelClient.awaitResponse */
#define B_DRAIN 5       /* ChannelClient.drain / empty */

/* Why a drain started (ChannelDesyncDetected.reason). */
#define W_STALE   1     /* staleEpoch: a response of an older epoch */
#define W_FOREIGN 2     /* unexpectedRequestID: an ID this backend did not send on this channel (this life) */
#define W_LATE    3     /* unexpectedRequestID, but the ID is one this backend sent (a late answer, a duplicate) */
#define W_AHEAD   4     /* agentAhead: the agent refused with a newer epoch */
#define W_UNANS   5     /* unanswered: one deadline passed */
#define W_SILENT  6     /* HB_RULE: unanswered past the liveness threshold (after RS resends) */

/* How the call ended, for its caller (ServerLink.worker / control / settleInherited). */
#define X_DESYNC  1
#define X_TIMEOUT 2

/* Agent channel program counter (AgentService.poll + RequestHandler.handle). */
#define G_IDLE   0
#define G_ADMIT  1      /* ChannelEpochs.admit + AgentJournal.recordedResponse */
#define G_EXEC   2      /* RequestHandler.execute */
#define G_LAUNCH 4      /* runtime.start */
#define G_STARTED 5     /* AgentTasks.started */
#define G_STOPWAIT 6    /* FIX_STOP: a stop waits for a launch in progress */
#define G_AWAIT  7      /* AgentTasks.awaitReport: another request is starting the attempt */
#define G_SEND   9      /* responses.send */
#define G_DELETE 10     /* requests.delete */

chan rq[NCH] = [QN] of { mtype, byte, byte, byte, byte };   /* command, request ID, epoch, expiresAt, message ID */
chan rs[NCH] = [QR] of { mtype, byte, byte, byte, byte };   /* reply, request ID, epoch, agent epoch, report */

byte now;                                   /* abstract time, shared (no clock skew) */
byte nextMid = 1;                           /* message IDs: a duplicated delivery keeps its message's ID */
int rsDedup;                                /* response deduplication IDs used: "resp-" + request message ID */
byte dups = NDUP; byte crashes = NCRASH; byte restarts = NRESTART;

/* ---- agent: journal (survives a crash) ---- */
byte agEp[NCH];                             /* ChannelEpochs: channel.epoch */
mtype jAns[NID];                            /* request/<id>: request.answered (0: none) */
byte jInv[NID];                             /* ...its report */
byte jAtt;                                  /* attempt/<task>/1: A_NONE, A_LNCH, A_RUN, A_STP, A_FTS */
bool jCancel;                               /* FIX_STOP: the stop tombstone */
/* ---- the task's process: outlives the agent ---- */
bool proc;
byte launches;
/* ---- agent: memory ---- */
byte rep;                                   /* AgentTasks.reports[attempt 1].state */
bool starting;                              /* AgentTasks.starting contains attempt 1 */
byte gPc[NCH]; mtype gCmd[NCH]; byte gId[NCH]; byte gEp[NCH]; byte gExp[NCH]; byte gMid[NCH]; mtype gKind[NCH];
byte gInv[NCH];

/* ---- backend: event log (survives a restart) ---- */
byte bEp[NCH];                              /* channel_sync.epoch */
byte out[NCH]; mtype outCmd[NCH]; byte outBy[NCH];  /* channel_sync.outstanding: ID, command, answerBy */
byte tStat = T_DISP;                        /* TaskBoard row of attempt 1 */
bool tCancel;                               /* cancelRequestedAt != nil */
byte deliverBy;                             /* startDeliverBy */
/* ---- backend: memory ---- */
byte bPc[NCH];
mtype wCmd[NCH]; byte wId[NCH]; byte wExp[NCH];  /* the work the call is for (its command, ID, deliverBy) */
mtype cCmd[NCH]; byte cId[NCH]; byte cExp[NCH]; byte cWait[NCH];  /* the exchange in progress */
bool inh[NCH];                              /* the exchange is a request inherited from the previous process */
bool pend[NCH];                             /* pendingSync */
byte flr[NCH];                              /* floor */
bool syncing[NCH];
int known[NCH];                             /* request IDs sent on the channel by this process (bit mask) */
byte resends[NCH];                          /* HB_RULE: resends of the current request */
byte why[NCH]; byte exit[NCH];              /* drain reason, how the call ended */
byte nextId = 2;
bool wantStart = 1;                         /* the scheduler enqueued the start (Backend.schedule) */
bool wantStop; bool stopping; byte stopTries; bool cleaned;
bool stopAnswered;                          /* the agent answered a stop (stopped / not here) */
byte hbLeft = HBN;
/* the abstract inventory of the control channel (heartbeats), between listing and reconciling */
bool invPending; byte invL; byte invAt;

byte p_once = 1; byte p_stop = 1; byte p_deadline = 1; byte p_sync = 1; byte p_calm = 1;   /* the properties (1: holds so far) */

#ifndef NO_ONCE
#define CHECK_ONCE(e) p_once = (e); assert(p_once)
#else
#define CHECK_ONCE(e) skip
#endif
#ifndef NO_STOP
#define CHECK_STOP(e) p_stop = (e); assert(p_stop)
#else
#define CHECK_STOP(e) skip
#endif
#ifndef NO_DEADLINE
#define CHECK_DEADLINE(e) p_deadline = (e); assert(p_deadline)
#else
#define CHECK_DEADLINE(e) skip
#endif
#ifndef NO_SYNC
#define CHECK_SYNC(e) p_sync = (e); assert(p_sync)
#else
#define CHECK_SYNC(e) skip
#endif
#ifndef NO_CALM
#define CHECK_CALM(e) p_calm = (e); assert(p_calm)
#else
#define CHECK_CALM(e) skip
#endif

#ifdef HEARTBEAT
#define USED(c) (c == 0)
#else
#ifdef RACE
#define USED(c) (c == 1 || c == 2)
#else
#define USED(c) (c == 1)
#endif
#endif
#ifdef RACE
#define STOP_CH 2
#else
#define STOP_CH 1
#endif

#define LIVE (tStat == T_DISP || tStat == T_START || tStat == T_RUN)

/* A deadline t has passed. Time stops at MAXT; past it, a deadline counts as passed once nothing else can happen
   (spin's `timeout`): the wait would end there in a longer run, and nothing could have arrived meanwhile. */
#define PASSED(t) (now >= (t) || (now == MAXT && timeout))
#define AWAITING (bPc[0] == B_AWAIT || bPc[1] == B_AWAIT || bPc[2] == B_AWAIT)

/* ===================================================================================== backend: reconciliation */

/* Reconciler.transitions for one report of attempt 1 (placed rows only). */
inline reconcile(r) {
  if
  :: LIVE && r == A_RUN && tStat != T_RUN -> tStat = T_RUN
  :: LIVE && r == A_STP -> tStat = T_CANC
  :: LIVE && r == A_FTS -> CHECK_ONCE(!proc); tStat = T_GONE       /* failed (infrastructure), requeued */
  :: else -> skip
  fi
}

/* ServerLink.observe with a complete list (listedAfter != nil): the report, the expired-start rule, cleanup. */
inline observeList(r) {
  reconcile(r);
  if
  :: tStat == T_START && r == A_NONE && PASSED(deliverBy + E + M + 1) ->
     /* "the start request expired unanswered and the agent does not have the task" */
     CHECK_ONCE(!proc); tStat = T_GONE
  :: else -> skip
  fi;
  if
  :: r == A_RUN && !LIVE && !cleaned -> cleaned = 1; wantStop = 1; stopTries = 0   /* ServerLink.cleanUp */
  :: else -> skip
  fi
}

/* The listing an inventory holds: AgentTasks.all (FIX_DEADLINE: an attempt being launched is listed). */
#ifdef FIX_DEADLINE
#define LISTING ((starting && rep == A_NONE) -> A_LNCH : rep)
#else
#define LISTING rep
#endif

/* =========================================================================== backend: one channel's client */

inline startDrain(c, reason) {
  /* ChannelClient.drain: channel.desync-detected */
  CHECK_CALM(reason != W_LATE && reason != W_UNANS);
  why[c] = reason;
  bPc[c] = B_DRAIN
}

/* The caller's reaction to a call that ended in a desync or a timeout (ServerLink.worker's catch clauses,
   ServerLink.control, ChannelClient.settleInherited). */
inline afterError(c) {
  if
  :: inh[c] -> inh[c] = 0
  :: !inh[c] && wCmd[c] == START && exit[c] == X_DESYNC -> wantStart = 1     /* resend(item): same request ID */
  :: !inh[c] && wCmd[c] == START && exit[c] == X_TIMEOUT -> skip            /* a start is not resent on a timeout */
  :: !inh[c] && wCmd[c] == STOP ->
#ifdef FIX_STOP
     wantStop = 1                                                         /* retried until the agent confirms */
#else
     if :: stopTries < 3 -> stopTries++; wantStop = 1 :: else -> skip fi   /* resend: gives up after three tries */
#endif
  :: !inh[c] && wCmd[c] == HB -> skip                                      /* control: missed, next heartbeat */
  fi;
  bPc[c] = B_IDLE
}

/* The caller's handling of a matched response (ServerLink.worker / control / handle). */
inline onMatched(c, k, r) {
  if
  :: cCmd[c] == SYNC && !inh[c] ->
     /* ChannelClient.call: pendingSync = nil; onSync -> ServerLink.observe(reply.tasks, listedAfter:) */
     pend[c] = 0; syncing[c] = 0;
     if :: k == R_SYNCED -> observeList(r) :: else -> skip fi;
     cCmd[c] = wCmd[c]; cId[c] = wId[c]; cExp[c] = wExp[c];
     bPc[c] = B_SEND
  :: else ->
     if
     :: cCmd[c] == START && k == R_STARTED -> reconcile(r)                /* observe([report], listedAfter: nil) */
     :: cCmd[c] == START && k != R_STARTED -> reconcile(A_FTS)            /* "the agent refused the start" */
     :: cCmd[c] == STOP && k == R_STOPPED -> stopAnswered = 1; reconcile(r)
     :: cCmd[c] == STOP && k == R_NEVER ->                                /* FIX_STOP: not here, never will be */
        stopAnswered = 1; if :: LIVE -> tStat = T_CANC :: else -> skip fi
     :: cCmd[c] == STOP && k == R_UNKNOWN ->
        stopAnswered = 1;                                                 /* the agent said: not here */
#ifdef FIX_STOP
        wantStop = 1
#else
        skip                                                              /* worker: only .taskStopped is handled */
#endif
     :: cCmd[c] == STOP && k != R_STOPPED && k != R_NEVER && k != R_UNKNOWN ->
#ifdef FIX_STOP
        wantStop = 1
#else
        skip
#endif
     :: cCmd[c] == SYNC && k == R_SYNCED -> observeList(r)               /* an inherited sync: handle(response) */
     :: else -> skip                                                      /* heartbeat (no task in HEARTBEAT) */
     fi;
     inh[c] = 0;
     bPc[c] = B_IDLE
  fi
}

proctype Backend(byte c) {
  mtype k; byte i; byte e; byte a; byte r;
end:
  do
  /* ServerLink.worker .start: stillWanted, then task.start-sending with the version it checked (one atomic step:
     the expected version makes a concurrent withdrawal or cancel fail one of the two appends). */
  :: atomic { bPc[c] == B_IDLE && c == 1 && wantStart && !inh[1] && !inh[2] ->
       wantStart = 0;
       if
       :: tStat == T_DISP && tCancel -> tStat = T_CANC         /* withdrawn: cancelled before the start was sent */
       :: (tStat == T_DISP || tStat == T_START) && !tCancel ->
          tStat = T_START; deliverBy = now + D;
          wCmd[c] = START; wId[c] = 1; wExp[c] = deliverBy; bPc[c] = B_CALL
       :: else -> skip                                         /* starting and cancelled, or no longer placed */
       fi }
  /* ServerLink.worker .stop (enqueued by Backend.enforceLifecycle or ServerLink.cleanUp). */
  :: atomic { bPc[c] == B_IDLE && c == STOP_CH && wantStop && !inh[1] && !inh[2] ->
       wantStop = 0;
       wCmd[c] = STOP; wId[c] = nextId; nextId++; wExp[c] = 255; bPc[c] = B_CALL }
  /* ServerLink.control: the next heartbeat (blocking query). */
  :: atomic { bPc[c] == B_IDLE && c == 0 && hbLeft > 0 && !inh[0] ->
       hbLeft--;
       wCmd[c] = HB; wId[c] = nextId; nextId++; wExp[c] = 255; bPc[c] = B_CALL }
  /* ChannelClient.call: after a drain, `sync` first (syncing: stale leftovers are discarded); then
     ChannelClient.exchange: expiresAt = deliverBy ?? now + delivery; requests.send. */
  :: atomic { (bPc[c] == B_CALL || bPc[c] == B_SEND) && len(rq[c]) < QN ->
       if
       :: bPc[c] == B_CALL && pend[c] -> cCmd[c] = SYNC; cId[c] = nextId; nextId++; cExp[c] = 255; syncing[c] = 1
       :: bPc[c] == B_CALL && !pend[c] -> cCmd[c] = wCmd[c]; cId[c] = wId[c]; cExp[c] = wExp[c]
       :: bPc[c] == B_SEND -> skip                             /* the command after its sync */
       fi;
       resends[c] = 0;
       assert(nextId < NID && nextMid < 31);
       if :: cExp[c] == 255 -> cExp[c] = now + D :: else -> skip fi;
       rq[c]!cCmd[c], cId[c], bEp[c], cExp[c], nextMid; nextMid++;
       known[c] = known[c] | (1 << cId[c]);
       bPc[c] = B_REC }
  /* ChannelClient.exchange: log.append(request.sent) makes it the channel's outstanding request. */
  :: atomic { bPc[c] == B_REC ->
       out[c] = cId[c]; outCmd[c] = cCmd[c]; outBy[c] = cExp[c] + E;
       if :: cExp[c] > now -> cWait[c] = cExp[c] + E :: else -> cWait[c] = now + E fi;
       bPc[c] = B_AWAIT }
  /* ChannelClient.awaitResponse + classify: one message received, recorded and deleted. */
  :: atomic { bPc[c] == B_AWAIT && nempty(rs[c]) ->
       rs[c]?k, i, e, a, r;
       if
       :: i == cId[c] && e == bEp[c] ->
          out[c] = 0;                                           /* channel.response.received */
          if
          :: k == R_STALE ->                                    /* the agent is ahead: resynchronise above it */
             if :: a > flr[c] -> flr[c] = a :: else -> skip fi;
             exit[c] = X_DESYNC; startDrain(c, W_AHEAD)
          :: else -> onMatched(c, k, r)
          fi
       :: else ->
          if
          :: syncing[c] && e < bEp[c] -> skip                   /* a leftover of the drain: rejected, skipped */
#ifdef HB_RULE
          :: !(syncing[c] && e < bEp[c]) && e == bEp[c] && (known[c] & (1 << i)) -> skip   /* a late answer */
          :: !(syncing[c] && e < bEp[c]) && !(e == bEp[c] && (known[c] & (1 << i))) ->
#else
          :: !(syncing[c] && e < bEp[c]) ->
#endif
             exit[c] = X_DESYNC;
             if
             :: e < bEp[c] -> startDrain(c, W_STALE)
             :: e >= bEp[c] && (known[c] & (1 << i)) -> startDrain(c, W_LATE)
             :: e >= bEp[c] && !(known[c] & (1 << i)) -> startDrain(c, W_FOREIGN)
             fi
          fi
       fi }
  /* ChannelClient.exchange / settleInherited: no response by expiresAt + executionSeconds. */
  :: atomic { bPc[c] == B_AWAIT && empty(rs[c]) && PASSED(cWait[c]) && (len(rq[c]) < QN || resends[c] >= RS || inh[c]) ->
       exit[c] = X_TIMEOUT;
#ifdef HB_RULE
       if
       :: resends[c] < RS && !inh[c] ->
          /* resent with the same request ID and deadline: the agent answers it from its journal */
          resends[c]++;
          rq[c]!cCmd[c], cId[c], bEp[c], cExp[c], nextMid; nextMid++;
          cWait[c] = now + D + E
       :: else -> startDrain(c, W_SILENT)
       fi
#else
       startDrain(c, W_UNANS)
#endif
     }
  /* ChannelClient.empty: receive-and-delete; a request the agent holds is invisible (and so is its FIFO group). */
  :: atomic { bPc[c] == B_DRAIN && nempty(rq[c]) && gPc[c] == G_IDLE ->
       do :: nempty(rq[c]) -> rq[c]?_, _, _, _, _ :: empty(rq[c]) -> break od }
  :: atomic { bPc[c] == B_DRAIN && nempty(rs[c]) ->
       do :: nempty(rs[c]) -> rs[c]?_, _, _, _, _ :: empty(rs[c]) -> break od }
  /* ChannelClient.drain: two empty receives in a row; next epoch; channel.queues-drained; sync before the next. */
  :: atomic { bPc[c] == B_DRAIN && (empty(rq[c]) || gPc[c] != G_IDLE) && empty(rs[c]) ->
       if :: flr[c] > bEp[c] -> bEp[c] = flr[c] + 1 :: else -> bEp[c] = bEp[c] + 1 fi;
       out[c] = 0; pend[c] = 1; syncing[c] = 0;
       afterError(c) }
  od
}

/* Backend.enforceLifecycle: a cancel of a starting or running attempt enqueues its stop, once (`stopping`). */
proctype Lifecycle() {
end:
  do
  :: atomic { tCancel && (tStat == T_START || tStat == T_RUN) && !stopping ->
       stopping = 1; wantStop = 1; stopTries = 0 }
  od
}

/* The operator's `task cancel`, at any moment while the task is placed. */
proctype Cancel() {
  if
  :: atomic { LIVE -> tCancel = 1 }
  :: skip
  fi
}

/* The control channel's complete inventories (hello, heartbeat), abstracted: the agent lists, later the backend
   reconciles (ServerLink.observe). Only a listing that would change something is taken (the rest are no-ops). */
proctype Inventory() {
end:
  do
  :: atomic { !invPending &&
       ((tStat == T_START && (LISTING == A_RUN || LISTING == A_STP || LISTING == A_FTS
                              || (LISTING == A_NONE && PASSED(deliverBy + E + M + 1))))
        || (tStat == T_RUN && (LISTING == A_STP || LISTING == A_FTS))
        || (LISTING == A_RUN && !LIVE && !cleaned)) ->
       invL = LISTING; invAt = now; invPending = 1 }              /* RequestHandler.execute .heartbeat: tasks.all */
  :: atomic { invPending -> observeList(invL); invPending = 0 }   /* ServerLink.observe(beat.tasks, listedAfter:) */
  od
}

/* ================================================================================================ the agent */

/* AgentTasks.loadInventory after a restart: the journal, resolved against what the runtime finds. */
inline loadInventory() {
  starting = 0;
  if
  :: jAtt == A_LNCH && proc -> jAtt = A_RUN                       /* found by its labels: adopted */
  :: jAtt == A_LNCH && !proc -> jAtt = A_FTS                      /* resolveLaunch: never launched twice */
  :: else -> skip
  fi;
  rep = jAtt
}

/* AgentJournal.record(response, for:) before the response is sent: a second record keeps the first. (Merged into
   the step that decides the response: a crash between the two re-executes a read, a stop or an awaited start,
   which gives the same answer; a start's launch is journaled by its own steps.) */
inline record(c) {
  if
  :: jAns[gId[c]] == 0 -> jAns[gId[c]] = gKind[c]; jInv[gId[c]] = gInv[c]
  :: else -> gKind[c] = jAns[gId[c]]; gInv[c] = jInv[gId[c]]
  fi;
  gPc[c] = G_SEND
}

proctype Agent(byte c) {
end:
  do
  /* AgentService.poll: receive (the message turns invisible while held; it stays on the queue until deleted). */
  :: atomic { gPc[c] == G_IDLE && nempty(rq[c]) ->
       rq[c]?<gCmd[c], gId[c], gEp[c], gExp[c], gMid[c]>;
       /* RequestHandler.handle: ChannelEpochs.admit, then AgentJournal.recordedResponse. */
       if
       :: gEp[c] < agEp[c] -> gKind[c] = R_STALE; gInv[c] = 0; gPc[c] = G_SEND   /* refused, not journaled */
       :: else ->
          if :: gEp[c] > agEp[c] -> agEp[c] = gEp[c] :: else -> skip fi;
          if
          :: jAns[gId[c]] != 0 -> gKind[c] = jAns[gId[c]]; gInv[c] = jInv[gId[c]]; gPc[c] = G_SEND
          :: else -> gPc[c] = G_EXEC
          fi
       fi }
  /* RequestHandler.execute */
  :: atomic { gPc[c] == G_EXEC ->
       if
#ifdef FIX_KNOWN
       /* a start of an attempt the agent already has is answered with its report, even past the deadline */
       :: now >= gExp[c] && gCmd[c] == START && rep != A_NONE -> gPc[c] = G_AWAIT
       :: now >= gExp[c] && !(gCmd[c] == START && rep != A_NONE) ->
#else
       :: now >= gExp[c] ->
#endif
          gKind[c] = R_EXPIRED; gInv[c] = 0; record(c)       /* "expired": never executed */
       :: else ->
          CHECK_DEADLINE(now < gExp[c]);
          if
          :: gCmd[c] == HB -> gKind[c] = R_HB; gInv[c] = LISTING; jAns[gId[c]] = R_HB; jInv[gId[c]] = gInv[c]; gPc[c] = G_SEND
          :: gCmd[c] == SYNC -> gKind[c] = R_SYNCED; gInv[c] = LISTING; jAns[gId[c]] = R_SYNCED; jInv[gId[c]] = gInv[c];
             gPc[c] = G_SEND
          :: gCmd[c] == STOP ->
             if
             :: rep == A_RUN -> proc = 0; jAtt = A_STP; rep = A_STP;             /* runtime.stop */
                gKind[c] = R_STOPPED; gInv[c] = A_STP; record(c)
             :: rep != A_RUN && rep != A_NONE -> gKind[c] = R_STOPPED; gInv[c] = rep; record(c)
#ifdef FIX_STOP
             :: rep == A_NONE && starting -> jCancel = 1; gPc[c] = G_STOPWAIT   /* tombstone, then wait */
             :: rep == A_NONE && !starting -> jCancel = 1; gKind[c] = R_NEVER; gInv[c] = 0; record(c)
#else
             :: rep == A_NONE -> gKind[c] = R_UNKNOWN; gInv[c] = 0; record(c)   /* unknownTask */
#endif
             fi
          :: gCmd[c] == START ->
             /* AgentTasks.reserve, then AgentJournal.recordLaunching before the process exists (one step: a
                crash between them loses only the in-memory reservation) */
             if
             :: rep != A_NONE || starting -> gPc[c] = G_AWAIT          /* reserve fails: adopt, never start twice */
#ifdef FIX_STOP
             :: rep == A_NONE && !starting && jCancel ->                /* stopped before it came: refused */
                jAtt = A_STP; rep = A_STP; gKind[c] = R_STARTED; gInv[c] = A_STP; record(c)
             :: rep == A_NONE && !starting && !jCancel -> starting = 1; jAtt = A_LNCH; gPc[c] = G_LAUNCH
#else
             :: rep == A_NONE && !starting -> starting = 1; jAtt = A_LNCH; gPc[c] = G_LAUNCH
#endif
             fi
          fi
       fi }
  /* runtime.start */
  :: atomic { gPc[c] == G_LAUNCH ->
       if
#ifdef FIX_DEADLINE
       :: now >= gExp[c] ->                       /* expired while waiting to launch: not launched */
          jAtt = A_FTS; rep = A_FTS; starting = 0; gKind[c] = R_EXPIRED; gInv[c] = 0; record(c)
#endif
#ifdef FIX_STOP
       :: jCancel ->                               /* a stop came meanwhile: not launched */
          jAtt = A_STP; rep = A_STP; starting = 0; gKind[c] = R_STARTED; gInv[c] = A_STP; record(c)
#endif
       :: else ->
          CHECK_ONCE(launches == 0 && tStat != T_GONE);
          CHECK_STOP(!stopAnswered);
          CHECK_DEADLINE(now < gExp[c]);
          proc = 1; launches++;
          gPc[c] = G_STARTED
       fi }
  /* AgentTasks.started: journal attempt.started, then the report. */
  :: atomic { gPc[c] == G_STARTED ->
#ifdef FIX_STOP
       if :: jCancel -> proc = 0; jAtt = A_STP :: else -> jAtt = A_RUN fi;   /* stopped at once */
#else
       jAtt = A_RUN;
#endif
       rep = jAtt; starting = 0;
       gKind[c] = R_STARTED; gInv[c] = rep; record(c) }
  /* FIX_STOP: the stop waits for the launch in progress, then stops what it launched. */
  :: atomic { gPc[c] == G_STOPWAIT && !starting ->
       if :: rep == A_RUN -> proc = 0; jAtt = A_STP; rep = A_STP :: else -> skip fi;
       gKind[c] = R_STOPPED; gInv[c] = rep; record(c) }
  /* AgentTasks.awaitReport */
  :: atomic { gPc[c] == G_AWAIT && !starting ->
       if
       :: rep != A_NONE -> gKind[c] = R_STARTED; gInv[c] = rep
       :: else -> gKind[c] = R_EXPIRED; gInv[c] = 0               /* "could not be started" (an error) */
       fi;
       record(c) }
  /* AgentService.poll: responses.send, stamped with this delivery's epoch, deduplicated per delivered message
     (a redelivery of the same message: the queue keeps the first response only). */
  :: atomic { gPc[c] == G_SEND && len(rs[c]) < QR ->
       if
       :: !(rsDedup & (1 << gMid[c])) -> rs[c]!gKind[c], gId[c], gEp[c], agEp[c], gInv[c]; rsDedup = rsDedup | (1 << gMid[c])
       :: else -> skip
       fi;
       gPc[c] = G_DELETE }
  /* AgentService.poll: requests.delete (the held message is the head of its FIFO group). */
  :: atomic { gPc[c] == G_DELETE -> rq[c]?_, _, _, _, _; gPc[c] = G_IDLE }
  od
}

/* =========================================================================================== faults and time */

/* Time passes only while something depends on it: a backend awaiting, a request queued or held, a start not
   confirmed. (Deadlines are relative to `now`, so a tick while nothing waits changes nothing but the bound.) */
#define WAITS(c) (USED(c) && (bPc[c] == B_AWAIT || gPc[c] != G_IDLE || nempty(rq[c])))
#define TIME_MATTERS (WAITS(0) || WAITS(1) || WAITS(2) || tStat == T_START)

proctype Clock() {
end:
  do
  :: atomic { now < MAXT && TIME_MATTERS -> now++ }
  od
}

#define FOR_USED(c, body) c = 0; do :: c < NCH -> if :: USED(c) -> body :: else -> skip fi; c++ :: else -> break od

proctype Faults() {
  mtype k; byte i; byte e; byte a; byte r; byte c;
end:
  do
  /* a duplicated delivery of a request (SQS at-least-once, a redelivery past the visibility timeout) */
  :: atomic { dups > 0 && USED(0) && nempty(rq[0]) && len(rq[0]) < QN -> rq[0]?<k, i, e, a, r>; rq[0]!k, i, e, a, r; dups-- }
  :: atomic { dups > 0 && USED(1) && nempty(rq[1]) && len(rq[1]) < QN -> rq[1]?<k, i, e, a, r>; rq[1]!k, i, e, a, r; dups-- }
  :: atomic { dups > 0 && USED(2) && nempty(rq[2]) && len(rq[2]) < QN -> rq[2]?<k, i, e, a, r>; rq[2]!k, i, e, a, r; dups-- }
  /* a duplicated response (the agent answered a duplicated delivery) */
  :: atomic { dups > 0 && USED(0) && nempty(rs[0]) && len(rs[0]) < QR -> rs[0]?<k, i, e, a, r>; rs[0]!k, i, e, a, r; dups-- }
  :: atomic { dups > 0 && USED(1) && nempty(rs[1]) && len(rs[1]) < QR -> rs[1]?<k, i, e, a, r>; rs[1]!k, i, e, a, r; dups-- }
  :: atomic { dups > 0 && USED(2) && nempty(rs[2]) && len(rs[2]) < QR -> rs[2]?<k, i, e, a, r>; rs[2]!k, i, e, a, r; dups-- }
  /* the agent killed and restarted: held requests turn visible again; AgentTasks.loadInventory */
  :: atomic { crashes > 0 ->
       crashes--;
       FOR_USED(c, gPc[c] = G_IDLE);
       loadInventory() }
  /* the backend killed and restarted: the projections from the log; settleInherited on each channel with an
     outstanding request; Backend.resendUnconfirmed; `stopping` and the control loop start empty. */
  :: atomic { restarts > 0 ->
       restarts--;
       FOR_USED(c,
         pend[c] = 0; flr[c] = 0; syncing[c] = 0; resends[c] = 0;
         if
         :: out[c] != 0 -> inh[c] = 1; cId[c] = out[c]; cCmd[c] = outCmd[c]; cWait[c] = outBy[c];
            known[c] = 1 << out[c]; bPc[c] = B_AWAIT
         :: else -> inh[c] = 0; known[c] = 0; bPc[c] = B_IDLE
         fi);
#ifndef HEARTBEAT
       wantStart = (tStat == T_DISP || tStat == T_START);
#endif
       wantStop = 0; stopping = 0; stopTries = 0; cleaned = 0; invPending = 0 }
  :: break
  od
}

/* ========================================================================================== returns to sync */

/* A duplicate response may be left on an idle channel: the next call there discards it (a late answer, a stale
   leftover) or drains on it; nothing waits for it. The agent's epoch may be behind (a restart forgot the pending
   sync): the next request carries the backend's epoch, which the agent adopts. */
inline channelInSync(c) {
  CHECK_SYNC(empty(rq[c]) && gPc[c] == G_IDLE && bPc[c] == B_IDLE && out[c] == 0 && agEp[c] <= bEp[c])
}

/* When no process can move (faults spent, time at MAXT, every message handled): everything agrees. */
proctype Quiet() {
  byte c;
  atomic {
    timeout && !AWAITING && !(tStat == T_START && !invPending && LISTING == A_NONE) ->
    FOR_USED(c, channelInSync(c));
#ifndef HEARTBEAT
    CHECK_STOP(!tCancel || (!proc && !LIVE));
    CHECK_SYNC(!wantStart && !wantStop && !invPending);
    CHECK_SYNC(proc == (tStat == T_RUN));
    CHECK_SYNC(tStat != T_START);
#endif
    skip
  }
}

init {
  atomic {
#ifdef HEARTBEAT
    wantStart = 0;
    run Backend(0); run Agent(0);
#else
    hbLeft = 0;
    run Backend(1); run Agent(1);
#ifdef RACE
    run Backend(2); run Agent(2);
#endif
    run Lifecycle(); run Cancel(); run Inventory();
#endif
    run Clock(); run Faults(); run Quiet()
  }
}
