// Who is logged in (kept in sessionStorage, one session per tab) and what they may do:
// desk administration (GET /api/v1/desks/me) and the node's monitoring (an operator of
// the node, GET /api/v1/admin/overview, may watch it too).
import { defineStore } from "pinia";
import { ApiFailure, api, setToken } from "@/api";
import type { Me } from "@/types";

// The one pending check of the user's rights, shared by the router guard and the app.
let checking: Promise<void> | null = null;

const KEY = "tidings.desks";

interface Saved { token: string; userId: number; username: string }

function load(): Saved | null {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    return saved && typeof saved.token === "string" ? saved : null;
  } catch {
    return null;
  }
}

export const useSession = defineStore("session", {
  state: () => ({
    saved: load(),
    deskAdmin: false,
    operator: false,
    /** False until /api/v1/desks/me answered (404: a node without the org API). */
    orgApi: false,
    /** True once the rights of the logged-in user were asked for. */
    checked: false,
    message: "",
  }),
  getters: {
    loggedIn: (s) => s.saved !== null,
    userId: (s) => s.saved?.userId ?? 0,
    username: (s) => s.saved?.username ?? "",
    mayMonitor: (s) => s.deskAdmin || s.operator,
  },
  actions: {
    async login(username: string, password: string, register: boolean): Promise<void> {
      if (register) {
        await api("/api/v1/auth/register", { method: "POST", body: { username, password } });
      }
      const answer = await api<{ token: string; user_id: number }>(
        "/api/v1/auth/login", { method: "POST", body: { username, password } });
      this.saved = { token: answer.token, userId: answer.user_id, username };
      sessionStorage.setItem(KEY, JSON.stringify(this.saved));
      this.message = "";
      this.checked = true;
      checking = this.loadRights();
      await checking;
    },
    /** Ask for the user's rights once (again after a login); every caller awaits it. */
    ensureRights(): Promise<void> {
      if (!this.checked || checking === null) {
        this.checked = true;
        checking = this.loadRights();
      }
      return checking;
    },
    async loadRights(): Promise<void> {
      setToken(this.saved?.token ?? null);
      if (!this.saved) return;
      try {
        const me = await api<Me>("/api/v1/desks/me");
        this.deskAdmin = me.desk_admin === true;
        this.orgApi = true;
      } catch (err) {
        // 404: this node has no organisation API yet; nobody gets admin controls.
        if (!(err instanceof ApiFailure) || err.status !== 404) throw err;
        this.deskAdmin = false;
        this.orgApi = false;
      }
      try {
        await api("/api/v1/admin/overview");
        this.operator = true;
      } catch {
        this.operator = false;
      }
    },
    logout(message = ""): void {
      this.saved = null;
      this.deskAdmin = false;
      this.operator = false;
      this.checked = false;
      this.message = message;
      sessionStorage.removeItem(KEY);
      setToken(null);
    },
  },
});
