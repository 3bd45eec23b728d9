// A failure of the Kubernetes API that goes away by itself: throttling, a server error, a
// concurrent writer, a dropped connection. Callers retry it; everything else is permanent.
import { VmsError } from '../errors.ts';

/** What the server (or the network) said, for retry decisions and for the message. */
export interface TransientKubeErrorInit {
  /** HTTP status; undefined when no answer arrived (refused, reset, timed out). */
  status?: number;
  /** The Status reason (`TooManyRequests`, `Conflict`, `AlreadyExists`, `NotFound`) or a socket error code. */
  reason: string;
  /** From the server's Retry-After header: wait at least this long before the next try. */
  retryAfterMs?: number;
}

/** A Kubernetes API failure worth retrying; `retryAfterMs` is set when the server asked for a pause. */
export class TransientKubeError extends VmsError {
  readonly status: number | undefined;
  readonly reason: string;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, init: TransientKubeErrorInit, options?: { cause?: unknown }) {
    super(
      init.status === undefined ? 'VMS_ERR_KUBE_UNREACHABLE' : 'VMS_ERR_KUBE_TRANSIENT',
      message,
      { status: init.status, reason: init.reason, retryAfterMs: init.retryAfterMs },
      options,
    );
    this.name = 'TransientKubeError';
    this.status = init.status;
    this.reason = init.reason;
    this.retryAfterMs = init.retryAfterMs;
  }

  /** True for a 409: someone else changed or created the object since we read it. */
  get isConflict(): boolean {
    return this.status === 409;
  }
}
