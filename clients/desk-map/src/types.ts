// The shapes of the Tidings desk API (docs/desks.md) as this app reads them. Fields the
// organisation API adds (ORG_API: workstation_id, department_color, occupant_name) are
// optional: a node without them still works, with fallbacks.

export const STATUSES = ["available", "occupied", "reserved", "maintenance", "disabled"] as const;
export type Status = (typeof STATUSES)[number];

export interface Booking {
  id: number;
  workstation_id: number;
  user_id: number;
  start_time: string;
  end_time: string | null;
  reservation_type: "temporary" | "scheduled" | "permanent";
  status: string;
}

export interface Desk {
  id: number;
  name: string;
  workstation_id?: string;
  department_id: number | null;
  department: string | null;
  department_color?: string | null;
  employee_id: number | null;
  employee: string | null;
  x_position: number;
  y_position: number;
  width: number;
  height: number;
  status: Status;
  equipment: string[];
  notes: string;
  floor_id: number | null;
  floor_number: number | null;
  building: string | null;
  occupied_by: number | null;
  occupant_name?: string | null;
  occupied_at: string | null;
  bookings?: Booking[];
}

export interface Building { id: number; name: string }
export interface Floor {
  id: number;
  building_id: number;
  number?: number;
  floor_number?: number;
  name: string;
  width: number | null;
  height: number | null;
}
export interface Department { id: number; name: string; color: string | null }

/** A plain shape of a floor's layout: a wall, a meeting room, a label. */
export interface Shape {
  kind: "wall" | "room" | "aisle";
  x: number;
  y: number;
  width: number;
  height: number;
  label?: string;
}

export interface MapAnswer {
  buildings: Building[];
  floors: Floor[];
  departments: Department[];
  workstations: Desk[];
  total: number;
  truncated: boolean;
}

export interface Stats {
  total: number;
  by_status: Record<Status, number>;
  occupancy_rate: number;
  by_department: { id: number | null; name: string | null; total: number; occupied: number }[];
  by_floor: { id: number | null; building: string | null; number: number | null;
              total: number; occupied: number }[];
}

export interface Me { user_id: number; username: string; desk_admin: boolean }

export function floorNumber(floor: Floor): number {
  return floor.floor_number ?? floor.number ?? 0;
}
