-- Desk map, seed 000 fidelity (issue 15): workstations.workstation_id, the seed
-- §5.3.1 business id, unique, defaulting to the name (name#id where two existing
-- desks share a name). SQLite cannot add a NOT NULL column without a default:
-- the trigger below fills it for rows inserted without one, and the app always
-- writes it.

ALTER TABLE workstations ADD COLUMN workstation_id TEXT;
UPDATE workstations SET workstation_id = CASE
    WHEN (SELECT count(*) FROM workstations o WHERE o.name = workstations.name) > 1
    THEN name || '#' || id ELSE name END;
CREATE UNIQUE INDEX workstations_workstation_id ON workstations (workstation_id);

CREATE TRIGGER workstations_default_id AFTER INSERT ON workstations
    FOR EACH ROW WHEN NEW.workstation_id IS NULL
BEGIN
    UPDATE workstations SET workstation_id = CASE
        WHEN EXISTS (SELECT 1 FROM workstations o WHERE o.workstation_id = NEW.name)
        THEN NEW.name || '#' || NEW.id ELSE NEW.name END
    WHERE id = NEW.id;
END;
