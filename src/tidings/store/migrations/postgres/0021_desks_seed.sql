-- Desk map, seed 000 fidelity (issue 15):
-- * workstations.workstation_id, the seed §5.3.1 business id: unique, defaults to
--   the name (name#id where two existing desks share a name);
-- * the triggers also NOTIFY the seed's own channels (§4.1) workstation_changes,
--   employee_changes and department_changes with {"operation", "table", "id", ...};
-- * buildings and floors get change triggers too, so the organisation's edits
--   reach the map like the desks' do.

ALTER TABLE workstations ADD COLUMN workstation_id VARCHAR(120);
UPDATE workstations w SET workstation_id = CASE
    WHEN (SELECT count(*) FROM workstations o WHERE o.name = w.name) > 1
    THEN w.name || '#' || w.id ELSE w.name END;
ALTER TABLE workstations ALTER COLUMN workstation_id SET NOT NULL;
ALTER TABLE workstations ADD CONSTRAINT workstations_workstation_id_key UNIQUE (workstation_id);

-- A program inserting the seed's §7.2.1 columns (no workstation_id) still gets one.
CREATE FUNCTION tidings_desks_default_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.workstation_id IS NULL THEN
        IF EXISTS (SELECT 1 FROM workstations WHERE workstation_id = NEW.name) THEN
            NEW.workstation_id := NEW.name || '#' || NEW.id;
        ELSE
            NEW.workstation_id := NEW.name;
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER workstations_default_id BEFORE INSERT ON workstations
    FOR EACH ROW EXECUTE FUNCTION tidings_desks_default_id();

CREATE OR REPLACE FUNCTION tidings_desks_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload jsonb;
    seed jsonb;
    row_id integer := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
BEGIN
    seed := jsonb_build_object('operation', TG_OP, 'table', TG_TABLE_NAME, 'id', row_id);
    IF TG_TABLE_NAME = 'workstations' THEN
        payload := jsonb_build_object(
            'event', 'desk_change', 'table', TG_TABLE_NAME, 'op', TG_OP, 'id', row_id,
            'floor_id', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.floor_id END,
            'department_id', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.department_id END,
            'old_floor_id', CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.floor_id END,
            'old_department_id',
                CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.department_id END,
            'workstation_id',
                CASE WHEN TG_OP = 'DELETE' THEN OLD.workstation_id ELSE NEW.workstation_id END);
        seed := seed || jsonb_build_object(
            'workstation_id',
                CASE WHEN TG_OP = 'DELETE' THEN OLD.workstation_id ELSE NEW.workstation_id END,
            'status', CASE WHEN TG_OP = 'DELETE' THEN OLD.status ELSE NEW.status END);
        PERFORM pg_notify('workstation_changes', seed::text);
    ELSIF TG_TABLE_NAME = 'employees' THEN
        payload := jsonb_build_object(
            'event', 'desk_change', 'table', TG_TABLE_NAME, 'op', TG_OP, 'id', row_id,
            'department_id', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.department_id END,
            'old_department_id',
                CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.department_id END);
        PERFORM pg_notify('employee_changes', seed::text);
    ELSIF TG_TABLE_NAME = 'departments' THEN
        payload := jsonb_build_object(
            'event', 'desk_change', 'table', TG_TABLE_NAME, 'op', TG_OP, 'id', row_id,
            'department_id', row_id);
        PERFORM pg_notify('department_changes', seed::text);
    ELSIF TG_TABLE_NAME = 'floors' THEN
        payload := jsonb_build_object(
            'event', 'desk_change', 'table', TG_TABLE_NAME, 'op', TG_OP, 'id', row_id,
            'floor_id', row_id);
    ELSE
        payload := jsonb_build_object(
            'event', 'desk_change', 'table', TG_TABLE_NAME, 'op', TG_OP, 'id', row_id);
    END IF;
    payload := payload || jsonb_build_object('key', 'pg:' || nextval('tidings_desk_change_seq'));
    PERFORM pg_notify('tidings_desks', payload::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER buildings_notify AFTER INSERT OR UPDATE OR DELETE ON buildings
    FOR EACH ROW EXECUTE FUNCTION tidings_desks_notify();
CREATE TRIGGER floors_notify AFTER INSERT OR UPDATE OR DELETE ON floors
    FOR EACH ROW EXECUTE FUNCTION tidings_desks_notify();
