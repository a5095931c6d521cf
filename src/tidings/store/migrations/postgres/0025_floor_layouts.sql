-- The desk map's floor plans (web desk map, issue 16): each floor's walls, rooms and
-- aisles as a JSON list of plain shapes in the floor's own units.
CREATE TABLE floor_layouts (
    floor_id   INTEGER PRIMARY KEY REFERENCES floors(id) ON DELETE CASCADE,
    shapes     TEXT NOT NULL DEFAULT '[]',
    updated_at BIGINT NOT NULL DEFAULT tidings_now_ms()
);
