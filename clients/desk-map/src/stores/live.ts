// Socket.IO, exactly as the seed's client: rooms by floor, events in the seed's envelope
// {type, data, timestamp, messageId}. Long-polling stays on as the fallback (a proxy
// that blocks WebSocket upgrades still gets live updates). After every (re)connect the
// floor is reloaded over REST: events missed while away are not replayed.
import { defineStore } from "pinia";
import { io, type Socket } from "socket.io-client";
import { words } from "@/api";
import { usePlan } from "@/stores/plan";
import type { Desk } from "@/types";

interface Envelope { type: string; data: Record<string, unknown>; timestamp: string }

const DESK_EVENTS = ["workstation_update", "workstation_created", "workstation_deleted"];
const ORG_EVENTS = ["building_update", "floor_update", "department_update", "employee_update"];

let socket: Socket | null = null;
let statsTimer: ReturnType<typeof setTimeout> | null = null;

export const useLive = defineStore("live", {
  state: () => ({
    connected: false,
    everConnected: false,
    transport: "",
    reason: "",
    events: 0,
  }),
  actions: {
    connect(token: string): void {
      this.disconnect();
      const plan = usePlan();
      socket = io(window.location.origin, {
        // A function: each reconnect joins the floor shown then.
        auth: (cb) => cb({ token, floor: plan.floorId ?? undefined }),
        transports: ["polling", "websocket"],
        reconnectionDelayMax: 5000,
      });
      socket.on("connect", () => {
        this.connected = true;
        this.everConnected = true;
        this.reason = "";
        this.transport = socket?.io.engine.transport.name ?? "";
        socket?.io.engine.on("upgrade", (t: { name: string }) => { this.transport = t.name; });
        // Whatever changed while away: the shown floor again over REST.
        if (plan.floorId !== null) plan.loadFloor().catch((err) => { plan.error = words(err); });
      });
      socket.on("disconnect", (reason: string) => {
        this.connected = false;
        this.reason = reason;
      });
      socket.on("connect_error", (err: Error & { data?: { code?: string } }) => {
        this.connected = false;
        this.reason = err.message;
      });
      for (const name of DESK_EVENTS) socket.on(name, (m: Envelope) => this.onDesk(m));
      for (const name of ORG_EVENTS) socket.on(name, () => this.onOrg());
    },
    onDesk(message: Envelope): void {
      const plan = usePlan();
      this.events += 1;
      const data = message.data as unknown as Desk & { deleted?: boolean };
      if (message.type === "workstation_deleted" || data.deleted) plan.remove(data.id);
      else plan.put(data);
      // Events carry the row, not its bookings: the open details fetch them again.
      if (data.id === plan.selectedId && !data.deleted) {
        plan.refreshDesk(data.id).catch(() => undefined);
      }
      this.statsSoon();
    },
    onOrg(): void {
      const plan = usePlan();
      this.events += 1;
      plan.loadFloor().catch((err) => { plan.error = words(err); });
    },
    /** Stats follow the events, at most twice a second. */
    statsSoon(): void {
      if (statsTimer !== null) return;
      statsTimer = setTimeout(() => {
        statsTimer = null;
        usePlan().loadStats().catch(() => undefined);
      }, 500);
    },
    switchFloor(previous: number | null, next: number | null): void {
      if (!socket) return;
      if (previous !== null) socket.emit("leave", { floor: previous });
      if (next !== null) socket.emit("join", { floor: next });
    },
    disconnect(): void {
      socket?.disconnect();
      socket = null;
      this.connected = false;
    },
  },
});
