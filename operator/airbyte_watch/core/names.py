"""The names of the domain, in one place (as Flux keeps them in its `meta` package).

Phases, condition types, reasons, Event types and reasons, finalizer and label keys: what users
write `kubectl wait`, Argo conditions, alerts and dashboards against. Changing one is an API
change.
"""

from __future__ import annotations

from .. import GROUP

# --- status.phase --------------------------------------------------------------------------
PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CANCELLED = "Cancelled"
PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINAL_PHASES = frozenset({SUCCEEDED, FAILED, CANCELLED})

# --- condition types (kstatus: Ready, Reconciling, Stalled) ----------------------------------
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"

# --- reasons while waiting (Ready=Unknown, Reconciling=True) --------------------------------
PROGRESSING = "Progressing"
PROGRESSING_WITH_RETRY = "ProgressingWithRetry"
JOB_PENDING = "JobPending"
JOB_QUEUED = "JobQueued"
JOB_RUNNING = "JobRunning"
JOB_INCOMPLETE = "JobIncomplete"
JOB_UNKNOWN_STATUS_WAITING = "UnknownJobStatusWaiting"
WAITING_FOR_JOB_ID = "WaitingForJobId"
WAITING_FOR_CONNECTION = "WaitingForConnection"

# --- final reasons ---------------------------------------------------------------------------
JOB_SUCCEEDED = "JobSucceeded"
JOB_FAILED = "JobFailed"
JOB_CANCELLED = "JobCancelled"
UNKNOWN_JOB_STATUS = "UnknownJobStatus"
JOB_NOT_FOUND = "JobNotFound"
TIMED_OUT = "TimedOut"
CONNECTION_BUSY = "ConnectionBusy"
# spec.expect: the job succeeded, but not as the watch expects (phase Failed)
TOO_FEW_ROWS = "TooFewRows"  # below spec.expect.minRowsSynced
TOO_FEW_BYTES = "TooFewBytes"  # below spec.expect.minBytesSynced
ROWS_UNKNOWN = "RowsUnknown"  # Airbyte did not report a count that spec.expect bounds

# --- Stalled but re-checked until the deadline: fixable by the user --------------------------
SECRET_NOT_FOUND = "SecretNotFound"
INVALID_SECRET = "InvalidSecret"
AUTHENTICATION_FAILED = "AuthenticationFailed"
INVALID_JOB_ID = "InvalidJobId"  # spec.jobIdFrom's ConfigMap holds something that is not a job id
INVALID_SPEC = "InvalidSpec"  # Stalled until the spec is edited

# --- Event types and the reasons only Events carry ---------------------------------------------
NORMAL = "Normal"
WARNING = "Warning"
AIRBYTE_UNREACHABLE = "AirbyteUnreachable"
AIRBYTE_REACHABLE = "AirbyteReachable"
CANCELLED_ON_DELETE = "CancelledOnDelete"
CANCEL_UNCONFIRMED = "CancelUnconfirmed"

# --- keys on the object -------------------------------------------------------------------------
CANCEL_FINALIZER = f"{GROUP}/cancel-on-delete"
