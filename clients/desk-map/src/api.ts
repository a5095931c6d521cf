// fetch() of the Tidings HTTP API: JSON in and out, the session's Bearer token, and
// refusals turned into ApiFailure with a sentence a person can read.

export class ApiFailure extends Error {
  constructor(public status: number, public code: string, public reason: string) {
    super(`${code}: ${reason}`);
  }

  /** What to tell the user, by status first (409 taken, 403 not allowed). */
  get words(): string {
    switch (this.code) {
      case "WORKSTATION_OCCUPIED": return "This desk is taken: someone else occupies it.";
      case "BOOKING_CONFLICT": return "That time is taken: it overlaps another booking.";
      case "WORKSTATION_UNAVAILABLE": return "This desk is out of service.";
      case "WORKSTATION_NOT_OCCUPIED": return "Nobody occupies this desk any more.";
      case "NOT_OCCUPANT": return "Not allowed: someone else occupies this desk.";
      case "NOT_BOOKER": return "Not allowed: that reservation is someone else's.";
      case "DESK_ADMIN_REQUIRED": return "Not allowed: only desk administrators may do this.";
    }
    if (this.status === 409) return `Taken: ${this.reason}`;
    if (this.status === 403) return `Not allowed: ${this.reason}`;
    if (this.status === 401) return "Your session has ended: log in again.";
    if (this.status === 422) return `Not accepted: ${this.reason}`;
    if (this.status === 429) return "Too many requests: wait a moment.";
    return this.reason || `The server answered ${this.status}.`;
  }
}

let token: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setToken(value: string | null): void { token = value; }
export function whenUnauthorized(handler: () => void): void { onUnauthorized = handler; }

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}
): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, {
      method: init.method ?? "GET", headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
  } catch {
    throw new ApiFailure(0, "NETWORK", "The server cannot be reached.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data?.error ?? { code: `HTTP_${response.status}`, message: response.statusText };
    if (response.status === 401 && token && onUnauthorized) onUnauthorized();
    throw new ApiFailure(response.status, String(error.code), String(error.message ?? ""));
  }
  return data as T;
}

/** The error as words for the page. */
export function words(err: unknown): string {
  return err instanceof ApiFailure ? err.words : String(err);
}
