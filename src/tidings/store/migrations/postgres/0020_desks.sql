-- Desk map (seed 000): buildings, floors, departments, employees, workstations,
-- their occupancy (no two active bookings of one desk overlap) and an audit log,
-- plus the change feed: triggers NOTIFY 'tidings_desks' on every change.

-- btree_gist lets an EXCLUDE constraint mix "=" on an integer with "&&" on a range.
-- It is a trusted extension (PostgreSQL 13+): a database owner may create it.
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Times are integer milliseconds since the epoch, as in the core schema; the
-- default lets rows inserted by other programs (psql) get one too.
CREATE FUNCTION tidings_now_ms() RETURNS BIGINT LANGUAGE sql STABLE AS
$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

CREATE TABLE buildings (
    id         SERIAL PRIMARY KEY,
    name       VARCHAR(50) NOT NULL UNIQUE,
    created_at BIGINT NOT NULL DEFAULT tidings_now_ms()
);

CREATE TABLE floors (
    id          SERIAL PRIMARY KEY,
    building_id INTEGER NOT NULL REFERENCES buildings(id) ON DELETE CASCADE,
    number      INTEGER NOT NULL,
    name        VARCHAR(100) NOT NULL DEFAULT '',
    width       DOUBLE PRECISION NOT NULL DEFAULT 1200,
    height      DOUBLE PRECISION NOT NULL DEFAULT 800,
    UNIQUE (building_id, number)
);

CREATE TABLE departments (
    id         SERIAL PRIMARY KEY,
    name       VARCHAR(100) NOT NULL UNIQUE,
    color      VARCHAR(20) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL DEFAULT tidings_now_ms(),
    updated_at BIGINT NOT NULL DEFAULT tidings_now_ms()
);

CREATE TABLE employees (
    id            SERIAL PRIMARY KEY,
    name          VARCHAR(100) NOT NULL,
    email         VARCHAR(200),
    department_id INTEGER REFERENCES departments(id) ON DELETE SET NULL,
    user_id       BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at    BIGINT NOT NULL DEFAULT tidings_now_ms(),
    updated_at    BIGINT NOT NULL DEFAULT tidings_now_ms()
);

-- Seed §7.2.1 columns, with floor_id added so that rooms can be by floor, and
-- occupied_by / occupied_at as in seed §2.4's occupy flow.
CREATE TABLE workstations (
    id            SERIAL PRIMARY KEY,
    name          VARCHAR(100) NOT NULL,
    department_id INTEGER REFERENCES departments(id) ON DELETE SET NULL,
    employee_id   INTEGER REFERENCES employees(id) ON DELETE SET NULL,
    x_position    DOUBLE PRECISION NOT NULL CHECK (x_position >= 0),
    y_position    DOUBLE PRECISION NOT NULL CHECK (y_position >= 0),
    width         DOUBLE PRECISION NOT NULL DEFAULT 120 CHECK (width > 0),
    height        DOUBLE PRECISION NOT NULL DEFAULT 80 CHECK (height > 0),
    status        VARCHAR(20) NOT NULL DEFAULT 'available'
        CHECK (status IN ('available', 'occupied', 'reserved', 'maintenance', 'disabled')),
    equipment     TEXT NOT NULL DEFAULT '[]',
    notes         TEXT NOT NULL DEFAULT '',
    floor_id      INTEGER REFERENCES floors(id) ON DELETE SET NULL,
    floor_number  INTEGER,
    building      VARCHAR(50),
    occupied_by   BIGINT REFERENCES users(id) ON DELETE SET NULL,
    occupied_at   BIGINT,
    created_at    BIGINT NOT NULL DEFAULT tidings_now_ms(),
    updated_at    BIGINT NOT NULL DEFAULT tidings_now_ms()
);
CREATE INDEX workstations_floor ON workstations (floor_id, id);
CREATE INDEX workstations_department ON workstations (department_id, id);
CREATE INDEX workstations_status ON workstations (status, id);

CREATE TABLE workstation_occupancy (
    id               BIGSERIAL PRIMARY KEY,
    workstation_id   INTEGER NOT NULL REFERENCES workstations(id) ON DELETE CASCADE,
    user_id          BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    start_time       BIGINT NOT NULL,
    end_time         BIGINT,
    reservation_type VARCHAR(20) NOT NULL
        CHECK (reservation_type IN ('temporary', 'permanent', 'scheduled')),
    status           VARCHAR(20) NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'completed', 'cancelled')),
    created_at       BIGINT NOT NULL DEFAULT tidings_now_ms(),
    updated_at       BIGINT NOT NULL DEFAULT tidings_now_ms(),
    CONSTRAINT valid_time_range CHECK (end_time IS NULL OR end_time > start_time),
    -- Seed §5.3.1: two active bookings of one desk never overlap in time.
    CONSTRAINT no_overlap EXCLUDE USING gist (
        workstation_id WITH =,
        int8range(start_time, COALESCE(end_time, 9223372036854775807)) WITH &&
    ) WHERE (status = 'active')
);
CREATE INDEX workstation_occupancy_user ON workstation_occupancy (user_id, status);

CREATE TABLE workstation_logs (
    id             BIGSERIAL PRIMARY KEY,
    workstation_id INTEGER NOT NULL,
    user_id        BIGINT,
    action         VARCHAR(20) NOT NULL,
    detail         TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL DEFAULT tidings_now_ms()
);
CREATE INDEX workstation_logs_desk ON workstation_logs (workstation_id, id);

-- Change feed (seed §4.1). The payload names the row and the rooms it was and
-- is in; listeners read the row itself, so the payload stays far below
-- NOTIFY's 8000-byte limit whatever the notes hold. NOTIFY is sent at commit,
-- so a rolled-back change is never announced.
-- Numbers each change, so that every node names it alike (see DeskChangeEvent.key).
CREATE SEQUENCE tidings_desk_change_seq;

CREATE FUNCTION tidings_desks_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload jsonb;
BEGIN
    IF TG_TABLE_NAME = 'workstations' THEN
        payload := jsonb_build_object(
            'event', 'desk_change', 'table', TG_TABLE_NAME, 'op', TG_OP,
            'id', COALESCE(NEW.id, OLD.id),
            'floor_id', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.floor_id END,
            'department_id', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.department_id END,
            'old_floor_id', CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.floor_id END,
            'old_department_id',
                CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.department_id END);
    ELSIF TG_TABLE_NAME = 'employees' THEN
        payload := jsonb_build_object(
            'event', 'desk_change', 'table', TG_TABLE_NAME, 'op', TG_OP,
            'id', COALESCE(NEW.id, OLD.id),
            'department_id', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.department_id END,
            'old_department_id',
                CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.department_id END);
    ELSE
        payload := jsonb_build_object(
            'event', 'desk_change', 'table', TG_TABLE_NAME, 'op', TG_OP,
            'id', COALESCE(NEW.id, OLD.id), 'department_id', COALESCE(NEW.id, OLD.id));
    END IF;
    payload := payload || jsonb_build_object('key', 'pg:' || nextval('tidings_desk_change_seq'));
    PERFORM pg_notify('tidings_desks', payload::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER workstations_notify AFTER INSERT OR UPDATE OR DELETE ON workstations
    FOR EACH ROW EXECUTE FUNCTION tidings_desks_notify();
CREATE TRIGGER employees_notify AFTER INSERT OR UPDATE OR DELETE ON employees
    FOR EACH ROW EXECUTE FUNCTION tidings_desks_notify();
CREATE TRIGGER departments_notify AFTER INSERT OR UPDATE OR DELETE ON departments
    FOR EACH ROW EXECUTE FUNCTION tidings_desks_notify();

-- A change made straight in the database (psql UPDATE) moves updated_at too,
-- unless the statement set it itself.
CREATE FUNCTION tidings_desks_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at = OLD.updated_at THEN
        NEW.updated_at := tidings_now_ms();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER workstations_touch BEFORE UPDATE ON workstations
    FOR EACH ROW EXECUTE FUNCTION tidings_desks_touch();
