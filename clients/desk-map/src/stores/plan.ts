// The shown floor: the map's frame (buildings, floors, departments), the floor's desks,
// the filters and the stats. The floor loads over REST first; live events then patch it.
import { defineStore } from "pinia";
import { api } from "@/api";
import type { Building, Department, Desk, Floor, MapAnswer, Shape, Stats, Status } from "@/types";

export interface Filters { q: string; departmentId: number | 0; status: Status | "" }

export const usePlan = defineStore("plan", {
  state: () => ({
    buildings: [] as Building[],
    floors: [] as Floor[],
    departments: [] as Department[],
    floorId: null as number | null,
    desks: new Map<number, Desk>(),
    shapes: [] as Shape[],
    stats: null as Stats | null,
    filters: { q: "", departmentId: 0, status: "" } as Filters,
    selectedId: null as number | null,
    loaded: false,
    error: "",
    /** user id -> name, for occupants and bookers when the row has no occupant_name */
    names: new Map<number, string>(),
  }),
  getters: {
    floor: (s) => s.floors.find((f) => f.id === s.floorId) ?? null,
    deskList: (s) => [...s.desks.values()],
    selected: (s) => (s.selectedId === null ? null : s.desks.get(s.selectedId) ?? null),
    filtering: (s) => Boolean(s.filters.q.trim() || s.filters.departmentId || s.filters.status),
    department: (s) => (id: number | null) => s.departments.find((d) => d.id === id) ?? null,
  },
  actions: {
    matches(desk: Desk): boolean {
      const f = this.filters;
      const q = f.q.trim().toLowerCase();
      if (q && !(desk.name.toLowerCase().includes(q) ||
                 (desk.workstation_id ?? "").toLowerCase().includes(q) ||
                 (desk.occupant_name ?? "").toLowerCase().includes(q))) return false;
      if (f.departmentId && desk.department_id !== f.departmentId) return false;
      if (f.status && desk.status !== f.status) return false;
      return true;
    },
    async loadFrame(): Promise<void> {
      // A floor id no floor has: the frame (buildings, floors, departments) without desks.
      const frame = await api<MapAnswer>("/api/map?floor_id=2147483647");
      this.buildings = frame.buildings;
      this.floors = frame.floors;
      this.departments = frame.departments;
      if (this.floorId === null || !this.floors.some((f) => f.id === this.floorId)) {
        this.floorId = this.floors[0]?.id ?? null;
      }
    },
    async loadFloor(): Promise<void> {
      if (this.floorId === null) {
        this.desks = new Map();
        this.loaded = true;
        return;
      }
      const floorId = this.floorId;
      const [answer, layout] = await Promise.all([
        api<MapAnswer>(`/api/map?floor_id=${floorId}`),
        api<{ shapes: Shape[] }>(`/api/v1/desks/floors/${floorId}/layout`)
          .catch(() => ({ shapes: [] as Shape[] })),  // a node without floor plans
      ]);
      this.buildings = answer.buildings;
      this.floors = answer.floors;
      this.departments = answer.departments;
      this.desks = new Map(answer.workstations.map((d) => [d.id, d]));
      this.shapes = layout.shapes;
      this.loaded = true;
      this.error = "";
      await Promise.all([this.loadNames(answer.workstations), this.loadStats()]);
    },
    async loadStats(): Promise<void> {
      this.stats = await api<Stats>("/api/workstations/stats");
    },
    /** Names of occupants the rows do not name (a node without occupant_name). */
    async loadNames(desks: Desk[]): Promise<void> {
      const ids = new Set<number>();
      for (const d of desks) {
        if (d.occupied_by !== null && !d.occupant_name && !this.names.has(d.occupied_by)) {
          ids.add(d.occupied_by);
        }
        for (const b of d.bookings ?? []) if (!this.names.has(b.user_id)) ids.add(b.user_id);
      }
      const list = [...ids].slice(0, 100);
      if (list.length === 0) return;
      const answer = await api<{ users: { user_id: number; username: string }[] }>(
        `/api/v1/users?ids=${list.join(",")}`);
      for (const u of answer.users) this.names.set(u.user_id, u.username);
    },
    nameOf(userId: number | null): string {
      if (userId === null) return "";
      return this.names.get(userId) ?? `user ${userId}`;
    },
    /** A row from the server (REST answer or live event) replaces ours. */
    put(desk: Desk): void {
      if (desk.floor_id === this.floorId) {
        const before = this.desks.get(desk.id);
        // Events carry the row without its bookings; keep the ones we loaded.
        if (before?.bookings && !desk.bookings) desk = { ...desk, bookings: before.bookings };
        this.desks.set(desk.id, desk);
        void this.loadNames([desk]);
      } else {
        this.desks.delete(desk.id);
      }
    },
    remove(id: number): void {
      this.desks.delete(id);
      if (this.selectedId === id) this.selectedId = null;
    },
    async refreshDesk(id: number): Promise<void> {
      const desk = await api<Desk>(`/api/workstations/${id}`);
      this.put(desk);
      await this.loadNames([desk]);
    },
  },
});
