-- Desk map (seed 000), SQLite dialect: the same tables as PostgreSQL's 0020.
-- Times are integer milliseconds since the epoch. SQLite has no exclusion
-- constraints: the desk store checks overlaps inside a BEGIN IMMEDIATE
-- transaction, which holds the database's single write lock. There is no change
-- feed either: the node publishes every change it makes on the bus.

CREATE TABLE buildings (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE floors (
    id          INTEGER PRIMARY KEY,
    building_id INTEGER NOT NULL REFERENCES buildings(id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    width       REAL NOT NULL DEFAULT 1200,
    height      REAL NOT NULL DEFAULT 800,
    UNIQUE (building_id, number)
);

CREATE TABLE departments (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    color      TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE employees (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT,
    department_id INTEGER REFERENCES departments(id) ON DELETE SET NULL,
    user_id       INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE workstations (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    department_id INTEGER REFERENCES departments(id) ON DELETE SET NULL,
    employee_id   INTEGER REFERENCES employees(id) ON DELETE SET NULL,
    x_position    REAL NOT NULL CHECK (x_position >= 0),
    y_position    REAL NOT NULL CHECK (y_position >= 0),
    width         REAL NOT NULL DEFAULT 120 CHECK (width > 0),
    height        REAL NOT NULL DEFAULT 80 CHECK (height > 0),
    status        TEXT NOT NULL DEFAULT 'available'
        CHECK (status IN ('available', 'occupied', 'reserved', 'maintenance', 'disabled')),
    equipment     TEXT NOT NULL DEFAULT '[]',
    notes         TEXT NOT NULL DEFAULT '',
    floor_id      INTEGER REFERENCES floors(id) ON DELETE SET NULL,
    floor_number  INTEGER,
    building      TEXT,
    occupied_by   INTEGER REFERENCES users(id) ON DELETE SET NULL,
    occupied_at   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX workstations_floor ON workstations (floor_id, id);
CREATE INDEX workstations_department ON workstations (department_id, id);
CREATE INDEX workstations_status ON workstations (status, id);

CREATE TABLE workstation_occupancy (
    id               INTEGER PRIMARY KEY,
    workstation_id   INTEGER NOT NULL REFERENCES workstations(id) ON DELETE CASCADE,
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    start_time       INTEGER NOT NULL,
    end_time         INTEGER,
    reservation_type TEXT NOT NULL
        CHECK (reservation_type IN ('temporary', 'permanent', 'scheduled')),
    status           TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'completed', 'cancelled')),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CHECK (end_time IS NULL OR end_time > start_time)
);
CREATE INDEX workstation_occupancy_desk ON workstation_occupancy (workstation_id, status);
CREATE INDEX workstation_occupancy_user ON workstation_occupancy (user_id, status);

CREATE TABLE workstation_logs (
    id             INTEGER PRIMARY KEY,
    workstation_id INTEGER NOT NULL,
    user_id        INTEGER,
    action         TEXT NOT NULL,
    detail         TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL
);
CREATE INDEX workstation_logs_desk ON workstation_logs (workstation_id, id);
