/* library_schema.c: the "library" component of the schema and its migrations.
 *
 * Append-only: a released migration never changes; a new column or index is a new entry at the end
 * of `migrations`. Paths are absolute and normalised (see library_store.h). Vectors are stored as
 * BLOBs of native float32 (landmarks 68x2, descriptor 128), thumbnails as JPEG BLOBs, times as
 * epoch milliseconds except mtime (ns, as stat gives it) and taken_at (EXIF, epoch seconds). */
#include <string.h>

#include "facenames/error.h"
#include "store/library/library_store.h"
#include "store/store_sql.h"

static const fn_migration migrations[] = {
    {1, "CREATE TABLE photos ("
        "  id INTEGER PRIMARY KEY,"
        "  path TEXT NOT NULL UNIQUE,"
        "  size INTEGER NOT NULL,"
        "  mtime_ns INTEGER NOT NULL,"
        "  hash INTEGER NOT NULL DEFAULT 0,"
        "  width INTEGER NOT NULL DEFAULT 0,"
        "  height INTEGER NOT NULL DEFAULT 0,"
        "  taken_at INTEGER,"
        "  format TEXT,"
        "  status TEXT NOT NULL CHECK (status IN ('ok', 'no_faces', 'error')),"
        "  error_code TEXT,"
        "  faces_skipped_small INTEGER NOT NULL DEFAULT 0,"
        "  ingested_at INTEGER NOT NULL,"
        "  job_id INTEGER"
        ");"
        "CREATE INDEX photos_status ON photos(status);"
        "CREATE TABLE persons ("
        "  id INTEGER PRIMARY KEY,"
        "  name TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL"
        ");"
        "CREATE TABLE clusters ("
        "  id INTEGER PRIMARY KEY,"
        "  label TEXT,"
        "  job_id INTEGER,"
        "  created_at INTEGER NOT NULL"
        ");"
        "CREATE TABLE faces ("
        "  id INTEGER PRIMARY KEY,"
        "  photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,"
        "  x REAL NOT NULL, y REAL NOT NULL, width REAL NOT NULL, height REAL NOT NULL,"
        "  score REAL NOT NULL,"
        "  landmarks BLOB,"
        "  descriptor BLOB,"
        "  thumbnail BLOB,"
        "  person_id INTEGER REFERENCES persons(id) ON DELETE SET NULL,"
        "  cluster_id INTEGER REFERENCES clusters(id) ON DELETE SET NULL,"
        "  origin TEXT NOT NULL DEFAULT 'auto' CHECK (origin IN ('auto', 'user')),"
        "  created_at INTEGER NOT NULL"
        ");"
        "CREATE INDEX faces_photo ON faces(photo_id);"
        "CREATE INDEX faces_person ON faces(person_id);"
        "CREATE INDEX faces_cluster ON faces(cluster_id);"
        "CREATE TABLE audit_log ("
        "  id INTEGER PRIMARY KEY,"
        "  at INTEGER NOT NULL,"
        "  actor TEXT NOT NULL,"
        "  action TEXT NOT NULL,"
        "  detail TEXT,"
        "  job_id INTEGER"
        ");"},
    /* People (docs/people.md). A face's `state` records who decided it: 'auto' (a job may relabel
     * it: cluster, person joined by clustering), 'confirmed' (a person assigned, moved or accepted
     * it: no job changes it), 'ignored' (not a face, or a stranger: no job looks at it again).
     * Persons are deleted softly (deleted_at) so an undo can bring one back with its faces.
     * audit_faces holds, per audit entry, each face's before/after, which is what undo replays
     * backwards; undone_by/undoes link an entry and its undo. A rejected suggestion is a
     * cannot_links row between the face and the person, forever (until undone). */
    {2, "ALTER TABLE faces ADD COLUMN state TEXT NOT NULL DEFAULT 'auto'"
        "  CHECK (state IN ('auto', 'confirmed', 'ignored'));"
        "CREATE INDEX faces_state ON faces(state);"
        "ALTER TABLE persons ADD COLUMN deleted_at INTEGER;"
        "ALTER TABLE clusters ADD COLUMN person_id INTEGER REFERENCES persons(id) ON DELETE SET NULL;"
        "ALTER TABLE clusters ADD COLUMN size INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE clusters ADD COLUMN centroid BLOB;"
        "CREATE TABLE suggestions ("
        "  face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,"
        "  person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,"
        "  confidence REAL NOT NULL,"
        "  distance REAL NOT NULL,"
        "  margin REAL NOT NULL,"
        "  support_face_id INTEGER,"
        "  job_id INTEGER,"
        "  created_at INTEGER NOT NULL"
        ");"
        "CREATE INDEX suggestions_person ON suggestions(person_id);"
        "CREATE TABLE cannot_links ("
        "  face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,"
        "  person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,"
        "  created_at INTEGER NOT NULL,"
        "  audit_id INTEGER,"
        "  PRIMARY KEY (face_id, person_id)"
        ") WITHOUT ROWID;"
        "CREATE INDEX cannot_links_person ON cannot_links(person_id);"
        "ALTER TABLE audit_log ADD COLUMN undone_by INTEGER;"
        "ALTER TABLE audit_log ADD COLUMN undoes INTEGER;"
        "CREATE TABLE audit_faces ("
        "  audit_id INTEGER NOT NULL REFERENCES audit_log(id) ON DELETE CASCADE,"
        "  face_id INTEGER NOT NULL,"
        "  person_before INTEGER, person_after INTEGER,"
        "  state_before TEXT NOT NULL, state_after TEXT NOT NULL,"
        "  cluster_before INTEGER, cluster_after INTEGER,"
        "  PRIMARY KEY (audit_id, face_id)"
        ") WITHOUT ROWID;"},
    /* Clustering (docs/clustering.md). cluster_run: the clustering run (the first job of a resume
     * chain) that last placed the face; NULL: clustering never saw it, which is what an
     * incremental run takes (so it costs what the new faces cost). cluster_prev: the face's
     * cluster before that run, so a resumed --full run still matches its clusters to the old ids.
     * faces_photo_people covers the same-photo rule's lookups without reading the face rows
     * (whose thumbnails put the later columns on overflow pages). */
    {3, "ALTER TABLE faces ADD COLUMN cluster_run INTEGER;"
        "ALTER TABLE faces ADD COLUMN cluster_prev INTEGER;"
        "CREATE INDEX faces_cluster_run ON faces(cluster_run);"
        "CREATE INDEX faces_photo_people ON faces(photo_id, person_id, cluster_id);"},
    /* Repair, export and import (docs/export.md). `models` is the checksum of the model files that
     * computed a photo's landmarks and descriptors (tasks/models_sum.h), NULL when unknown (rows
     * from before it was recorded, or imported without descriptors): repair recomputes the faces
     * of a photo whose checksum is not the current models'. `missing_at` is when repair last found
     * the file gone (kept with its people until `repair --prune`). The hash index finds a moved
     * photo by its content. */
    {4, "ALTER TABLE photos ADD COLUMN models TEXT;"
        "ALTER TABLE photos ADD COLUMN missing_at INTEGER;"
        "CREATE INDEX photos_hash ON photos(hash);"},
    /* Roots (issue 14, docs/postgresql.md "Roots"): a photo folder the library knows by name,
     * mounted at a path per host (root_paths), so workers on several machines recognise one photo
     * by its root and its path relative to it, wherever they mount it. `path` stays the absolute
     * path the photo was first ingested under (what the existing commands show and look up);
     * root and rel are kept in step with it by ingest. Not unique: two hosts that ingest the same
     * new photo at the same moment through different mounts must not fail each other's batch. */
    {5, "CREATE TABLE roots ("
        "  id INTEGER PRIMARY KEY,"
        "  name TEXT NOT NULL UNIQUE"
        ");"
        "CREATE TABLE root_paths ("
        "  root INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,"
        "  host TEXT NOT NULL,"
        "  path TEXT NOT NULL,"
        "  PRIMARY KEY (root, host)"
        ");"
        "ALTER TABLE photos ADD COLUMN root INTEGER REFERENCES roots(id);"
        "ALTER TABLE photos ADD COLUMN rel TEXT;"
        "CREATE INDEX photos_root_rel ON photos(root, rel);"},
    /* Photos by content (issue 14, design decision 34): a file whose bytes equal a known photo's
     * at the same relative path under another root (a copied tree, a share another host mounted
     * without a mapping) is that photo, not a new one; each such place is a row here, by its
     * absolute path as the host that found it reads it (rel under its own root), with the size,
     * mtime and hash it had, so that the next run over it is the unchanged fast path. A photo's
     * removal removes its copies. photos_size_hash finds the photos of a size (the only ones a
     * new file can equal: it is hashed only when there are some) and then of a hash. */
    {6, "CREATE TABLE photo_copies ("
        "  id INTEGER PRIMARY KEY,"
        "  path TEXT NOT NULL UNIQUE,"
        "  photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,"
        "  root INTEGER REFERENCES roots(id),"
        "  rel TEXT,"
        "  size INTEGER NOT NULL,"
        "  mtime_ns INTEGER NOT NULL,"
        "  hash INTEGER NOT NULL,"
        "  seen_at INTEGER NOT NULL"
        ");"
        "CREATE INDEX photo_copies_photo ON photo_copies(photo_id);"
        "CREATE INDEX photos_size_hash ON photos(size, hash);"},
};

int fn_library_migrate(fn_store *s)
{
    return fn_store_migrate(s, "library", migrations, sizeof migrations / sizeof migrations[0]);
}

int fn_library_check_version(fn_store *s)
{
    return fn_store_check_version(s, "library", migrations,
                                  sizeof migrations / sizeof migrations[0]);
}

static const char *const status_names[] = {"ok", "no_faces", "error"};

const char *fn_photo_status_name(fn_photo_status s)
{
    if ((unsigned)s < 3) return status_names[s];
    return "unknown";
}

int fn_photo_status_parse(const char *s, fn_photo_status *out)
{
    for (int i = 0; s && i < 3; i++) {
        if (strcmp(s, status_names[i]) == 0) {
            *out = (fn_photo_status)i;
            return 0;
        }
    }
    return FN_ERR_INVALID;
}
