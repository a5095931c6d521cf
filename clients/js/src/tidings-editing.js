// Seed 002's editing lock from JavaScript: one EditingSession per open document. It
// starts the session over HTTP, keeps it alive by heartbeat, asks for and answers
// takeovers, and listens on the editing WebSocket (/api/v1/ws/editing/{session_id}),
// whose JSON events it re-emits: "connected", "takeover_request", "takeover_response",
// "takeover_expired", "editing_ended" and "error" (each a CustomEvent whose detail is
// the event's `data`; `on(name, fn)` passes it). Field names are the wire's (docs/editing.md).

/** @import { HttpApi } from "./tidings-http.js" */

/**
 * @typedef {object} StartAnswer
 * @property {string} session_id
 * @property {boolean} editing true: this session holds the lock
 * @property {Record<string, any> | null} editor who holds it otherwise
 * @property {number} heartbeat_interval_ms
 */

/** One editing session of one document (workspace resource). */
export class EditingSession extends EventTarget {
  /**
   * Start a session on a resource: it gets the lock if nobody holds it.
   * @param {HttpApi} api logged in
   * @param {number} workspaceId
   * @param {number} resourceId
   * @returns {Promise<EditingSession>}
   */
  static async start(api, workspaceId, resourceId) {
    const path = `/api/v1/workspaces/${workspaceId}/resources/${resourceId}/editing`;
    /** @type {StartAnswer} */
    const answer = await api.request("POST", `${path}/start`, {});
    return new EditingSession(api, path, answer);
  }

  /**
   * Use {@link EditingSession.start}.
   * @param {HttpApi} api
   * @param {string} path the resource's editing path
   * @param {StartAnswer} answer
   */
  constructor(api, path, answer) {
    super();
    this.api = api;
    this.path = path;
    this.sessionId = answer.session_id;
    this.editing = answer.editing;
    this.editor = answer.editor;
    this.heartbeatMs = answer.heartbeat_interval_ms;
    /** @type {WebSocket | null} */
    this.socket = null;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this._beat = undefined;
  }

  /**
   * Subscribe to an editing event; `fn` gets its data. Returns a function that unsubscribes.
   * @param {string} name
   * @param {(data: any) => void} fn
   * @returns {() => void}
   */
  on(name, fn) {
    /** @param {Event} event */
    const listener = (event) => fn(/** @type {CustomEvent} */ (event).detail);
    this.addEventListener(name, listener);
    return () => this.removeEventListener(name, listener);
  }

  /**
   * Keep the session alive: one heartbeat now and every `heartbeat_interval_ms`.
   * @returns {Promise<{editing: boolean, editor: Record<string, any> | null}>}
   */
  async heartbeat() {
    const answer = await this.api.request("POST", `${this.path}/heartbeat`,
                                          { session_id: this.sessionId });
    this.editing = answer.editing;
    this.editor = answer.editor;
    return answer;
  }

  /** Send heartbeats by timer until close(); a failed one is emitted as "error". */
  keepAlive() {
    clearInterval(this._beat);
    this._beat = setInterval(() => {
      this.heartbeat().catch((err) => this._emit("error", { code: err.code ?? "HTTP_ERROR",
                                                            message: String(err) }));
    }, this.heartbeatMs);
  }

  /**
   * Who edits, and the pending takeover request if any (viewers may ask too).
   * @returns {Promise<{editor: Record<string, any> | null, pending_request: Record<string, any> | null}>}
   */
  status() {
    return this.api.request("GET", `${this.path}/status`);
  }

  /**
   * Ask the editor's session to hand the lock over; resolves with the request.
   * @param {string} [targetSessionId] the editor this session saw
   * @returns {Promise<Record<string, any>>}
   */
  async requestTakeover(targetSessionId) {
    /** @type {Record<string, string>} */
    const body = { requester_session_id: this.sessionId };
    if (targetSessionId) body.target_session_id = targetSessionId;
    return (await this.api.request("POST", `${this.path}/takeover-request`, body)).request;
  }

  /**
   * As the editor, answer a takeover request.
   * @param {number} requestId
   * @param {boolean} approved
   * @returns {Promise<Record<string, any>>}
   */
  async respond(requestId, approved) {
    const body = { request_id: requestId, approved, session_id: this.sessionId };
    return (await this.api.request("POST", `${this.path}/takeover-response`, body)).request;
  }

  /**
   * Requests waiting for this (editor's) session.
   * @returns {Promise<Record<string, any>[]>}
   */
  async pendingRequests() {
    const query = new URLSearchParams({ session_id: this.sessionId });
    return (await this.api.request("GET", `${this.path}/pending-requests?${query}`)).requests;
  }

  /**
   * One takeover request, for its requester or its target.
   * @param {number} requestId
   * @returns {Promise<Record<string, any>>}
   */
  async requestStatus(requestId) {
    return (await this.api.request("GET", `${this.path}/request-status/${requestId}`)).request;
  }

  /**
   * Open the editing WebSocket; resolves with the "connected" snapshot. Later events
   * are emitted; the socket's close is emitted as "close" with its code.
   * @param {{WebSocket?: typeof WebSocket}} [options]
   * @returns {Promise<Record<string, any>>}
   */
  listen({ WebSocket: socketClass = globalThis.WebSocket } = {}) {
    const token = encodeURIComponent(this.api.token ?? "");
    const root = this.api.baseUrl.replace(/^http/, "ws");
    const url = `${root}/api/v1/ws/editing/${encodeURIComponent(this.sessionId)}?token=${token}`;
    const ws = new socketClass(url);
    this.socket = ws;
    return new Promise((resolve, reject) => {
      ws.onmessage = (message) => {
        const { type, data } = JSON.parse(String(message.data));
        if (type === "connected") resolve(data);
        if (type === "editing_ended" || (type === "takeover_response" && data.approved)) {
          this._track(data.editor ?? null);
        }
        this._emit(type, data);
      };
      // Node 20's WebSocket fires no close event when the opening handshake fails.
      ws.onerror = () => {
        if (ws.readyState === 0 || ws.readyState === 3) {
          reject(new Error("cannot open the editing socket"));
        }
      };
      ws.onclose = (event) => {
        if (this.socket === ws) this.socket = null;
        reject(new Error(`editing socket closed (${event.code} ${event.reason})`));
        this._emit("close", { code: event.code, reason: event.reason });
      };
    });
  }

  /**
   * End the session (the lock, if held, is released) and stop listening.
   * @returns {Promise<{ended: boolean, was_editing: boolean}>}
   */
  async end() {
    this.close();
    return this.api.request("POST", `${this.path}/end`, { session_id: this.sessionId });
  }

  /** Stop heartbeats and close the socket; the session ends on the server by timeout. */
  close() {
    clearInterval(this._beat);
    const ws = this.socket;
    this.socket = null;
    if (ws) ws.close(1000, "bye");
  }

  /** @param {Record<string, any> | null} editor who edits now (null: nobody) */
  _track(editor) {
    this.editing = editor !== null && editor.session_id === this.sessionId;
    this.editor = this.editing ? null : editor;
  }

  /**
   * @param {string} name
   * @param {unknown} detail
   */
  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}
