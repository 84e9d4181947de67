/* fuzz_import.c: fuzz target for the import job's parsers on outside data: a json export of
 * another library, or an XMP sidecar. Each input runs the real job (engine in inline mode, one
 * library for the whole run): an input starting with '<' is the sidecar of a photo the library
 * knows, anything else a json export.
 *
 * Besides "does not crash": the job ends completed or failed (never stuck running), and the
 * library passes SQLite's integrity and foreign key checks afterwards. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facenames/jobs.h"
#include "facenames/tasks.h"
#include "store/library/library_interop.h"
#include "store/library/library_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static fn_engine *engine;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/fn-fuzz-import-XXXXXX");
    if (!mkdtemp(dir)) abort();
    fn_config cfg;
    fn_config_defaults(&cfg);
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    if (fn_engine_open(dir, &cfg, &engine) != 0 || fn_tasks_register_all(engine) != 0 ||
        fn_engine_start(engine, 0) != 0)
        abort();
    /* a photo for the sidecars to belong to (the file itself need not exist) */
    char path[160], payload[512];
    snprintf(path, sizeof path, "%s/seed.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"format\": \"facenames-export\", \"version\": 1, \"roots\": [\"%s\"], \"photos\":"
            " [{\"root\": 0, \"path\": \"p.jpg\", \"size\": 10, \"hash\": \"00000000000000aa\","
            " \"width\": 640, \"height\": 480, \"faces\": [{\"box\": {\"x\": 64, \"y\": 48,"
            " \"width\": 128, \"height\": 144}, \"score\": 0.9, \"origin\": \"auto\", \"state\":"
            " \"auto\", \"person\": null}]}], \"persons\": []}",
            dir);
    fclose(f);
    snprintf(payload, sizeof payload, "{\"path\": \"%s\"}", path);
    fn_job_id id;
    if (fn_enqueue(engine, "import", payload, FN_PRIO_NORMAL, &id) != 0 ||
        fn_engine_run_pending(engine, 0, NULL) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!engine) setup();
    int xmp = size && data[0] == '<';
    char path[160], payload[512];
    snprintf(path, sizeof path, xmp ? "%s/p.jpg.xmp" : "%s/in.json", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    snprintf(payload, sizeof payload, "{\"path\": \"%s\"}", xmp ? dir : path);
    fn_job_id id;
    if (fn_enqueue(engine, "import", payload, FN_PRIO_NORMAL, &id) != 0) abort();
    if (fn_engine_run_pending(engine, 0, NULL) != 0) abort();
    fn_job_info *j = NULL;
    if (fn_job_inspect(engine, id, &j) != 0) abort();
    if (j->state != FN_JOB_COMPLETED && j->state != FN_JOB_FAILED) abort();
    fn_job_info_free(j);
    unlink(path);

    char db[160], err[256];
    snprintf(db, sizeof db, "%s/library.db", dir);
    fn_store *s = NULL;
    if (fn_store_open(db, 5000, &s, err, sizeof err) != 0) abort();
    fn_xp_health h;
    if (fn_xp_check(s, &h) != 0 || h.integrity || h.foreign_keys) {
        fprintf(stderr, "the library is damaged after an import\n");
        abort();
    }
    fn_store_close(s);
    return 0;
}
