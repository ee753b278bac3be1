// test_inputs.c — the clip-list readers (inputs.h) on small hand-written files:
//   CSV: header or not, comments, blank lines, CRLF, quoted fields, names
//   numbered in byte order, integer labels, splits, paths resolved against
//   the CSV's directory (absolute ones kept);
//   SSv2: template -> class with the brackets removed, ids as strings or
//   numbers, VIDEOS/<id>.webm;
//   K400: columns by header (any order, extra columns) or by position, the
//   zero-padded file name, val -> test;
//   the stratified default split (counts per label, fixed splits kept,
//   deterministic);
//   every kind of bad input: the error names the file and the exact line;
//   label indices bounded (INPUTS_MAX_LABELS for CSV indices and numeric
//   label values, the number of labels for labels.json), negative ones
//   refused, before anything is allocated from them; long SSv2 ids kept whole;
//   a missing file names the system's reason.
// Usage: test_inputs DIR (a scratch directory). Prints "N passed, M failed";
// exits 1 on any failure.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/io/inputs.h"

#include "expect.h"

static char dir[512];

static const char *write_file(const char *name, const char *text) {
    static char path[8][1024];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 1024, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        printf("cannot write %s\n", p);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return p;
}

static char *at(const char *file, int line) {
    static char buf[1100];
    snprintf(buf, sizeof(buf), "%s/%s:%d: ", dir, file, line);
    return buf;
}

// The reader must fail with a message that starts with FILE:LINE: and holds `what`.
static void expect_error(int rc, const char *err, const char *file, int line, const char *what, const char *name) {
    char want[1100];
    snprintf(want, sizeof(want), "%s", at(file, line));
    int ok = rc != 0 && !strncmp(err, want, strlen(want)) && strstr(err, what);
    expect(ok, name);
    if (!ok) printf("     rc %d, got '%s'\n     want '%s...%s...'\n", rc, err, want, what);
}

static void test_csv(void) {
    char err[2048];
    ClipList l;
    const char *p = write_file("a.csv", "# a comment\n"
                                        "path,label,split\r\n"
                                        "videos/b.mp4, Pushing something ,train\r\n"
                                        "\n"
                                        "videos/a.mp4,\"Putting a, b\",test\n"
                                        "/abs/c.mp4,Pushing something,val\n"
                                        "d.mp4,\"say \"\"hi\"\"\"\n");
    int rc = inputs_read_csv(p, &l, err, sizeof(err));
    expect(rc == 0, "csv: reads");
    if (rc) {
        printf("     %s\n", err);
        return;
    }
    expect(l.n == 4 && l.n_labels == 3, "csv: 4 clips, 3 labels");
    expect_str(l.label_names[0], "Pushing something", "csv: names in byte order (0)");
    expect_str(l.label_names[1], "Putting a, b", "csv: quoted name with a comma (1)");
    expect_str(l.label_names[2], "say \"hi\"", "csv: doubled quotes (2)");
    char want[1024];
    snprintf(want, sizeof(want), "%s/videos/b.mp4", dir);
    expect_str(l.clip[0].path, want, "csv: relative path resolved against the CSV's directory");
    expect_str(l.clip[0].clip_id, "videos/b.mp4", "csv: clip_id is the path as written");
    expect_str(l.clip[2].path, "/abs/c.mp4", "csv: absolute path kept");
    expect(l.clip[0].label == 0 && l.clip[1].label == 1 && l.clip[2].label == 0 && l.clip[3].label == 2,
           "csv: labels by name");
    expect(l.clip[0].split == 0 && l.clip[1].split == 1 && l.clip[2].split == 1 && l.clip[3].split == -1,
           "csv: splits train, test, val, absent");
    inputs_free(&l);

    p = write_file("b.csv", "x/1.avi,2\nx/2.avi,0\n");
    rc = inputs_read_csv(p, &l, err, sizeof(err));
    expect(rc == 0 && l.n == 2 && l.n_labels == 3 && l.clip[0].label == 2 && l.clip[1].label == 0,
           "csv: integer labels without a header");
    if (rc == 0) {
        expect_str(l.label_names[1], "1", "csv: integer labels are named by their index");
        inputs_free(&l);
    }

    // default split: stratified, fixed splits kept, deterministic
    char text[8192] = "path,label,split\n";
    for (int i = 0; i < 30; i++) {
        char row[64];
        snprintf(row, sizeof(row), "v%02d.mp4,%s,%s\n", i, i < 10 ? "a" : "b", i == 0 ? "test" : i == 1 ? "train" : "");
        strcat(text, row);
    }
    p = write_file("c.csv", text);
    ClipList m;
    rc = inputs_read_csv(p, &l, err, sizeof(err)) | inputs_read_csv(p, &m, err, sizeof(err));
    expect(rc == 0, "csv: split list reads");
    if (rc == 0) {
        inputs_default_split(&l, 0.25, 7);
        inputs_default_split(&m, 0.25, 7);
        int test_a = 0, test_b = 0, same = 1;
        for (int i = 0; i < l.n; i++) {
            test_a += l.clip[i].label == 0 && l.clip[i].split == 1;
            test_b += l.clip[i].label == 1 && l.clip[i].split == 1;
            same &= l.clip[i].split == m.clip[i].split;
        }
        // a: 8 without a split -> round(2) = 2 test, plus the fixed one; b: 20 -> 5
        expect(test_a == 3 && test_b == 5, "default split: round(test_frac * n) per label");
        expect(l.clip[0].split == 1 && l.clip[1].split == 0, "default split: given splits kept");
        expect(same, "default split: deterministic");
        inputs_free(&l);
        inputs_free(&m);
    }

    // errors
    p = write_file("e1.csv", "path,label\na.mp4,x\nb.mp4,3\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "e1.csv", 3, "one kind", "csv: mixed label kinds");
    p = write_file("e2.csv", "a.mp4,x,train\n\n# c\nb.mp4,x,dev\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "e2.csv", 4, "split 'dev'", "csv: bad split");
    p = write_file("e3.csv", "a.mp4,x\nb.mp4\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "e3.csv", 2, "1 field", "csv: too few fields");
    p = write_file("e4.csv", "a.mp4,x,train,extra\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "e4.csv", 1, "4 fields", "csv: too many fields");
    p = write_file("e5.csv", "a.mp4,x\n ,x\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "e5.csv", 2, "empty path", "csv: empty path");
    p = write_file("e6.csv", "a.mp4,x\nb.mp4,y\na.mp4,z\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "e6.csv", 3, "first at line 1", "csv: duplicate clip");
    p = write_file("e7.csv", "a.mp4,\"x\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "e7.csv", 1, "unterminated quote", "csv: open quote");
    p = write_file("e8.csv", "a.mp4,\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "e8.csv", 1, "empty label", "csv: empty label");
    p = write_file("e9.csv", "path,label\n# nothing\n");
    rc = inputs_read_csv(p, &l, err, sizeof(err));
    expect(rc != 0 && strstr(err, "e9.csv: lists no clip"), "csv: no clip");
    snprintf(want, sizeof(want), "%s/missing.csv", dir);
    rc = inputs_read_csv(want, &l, err, sizeof(err));
    expect(rc != 0 && strstr(err, "missing.csv: cannot open") && strstr(err, "No such file or directory"),
           "csv: missing file, with the system's reason");

    // label indices are bounded (INPUTS_MAX_LABELS): a 17-byte file must not allocate gigabytes
    p = write_file("big1.csv", "a.mp4,1000000000\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "big1.csv", 1, "label index 1000000000",
                 "csv: label index 10^9 refused");
    p = write_file("big2.csv", "a.mp4,0\nb.mp4,70000\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "big2.csv", 2, "at most 65535",
                 "csv: label index past the cap refused");
    p = write_file("big3.csv", "a.mp4,99999999999999999999\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "big3.csv", 1, "at most 65535",
                 "csv: an all-digit label too large for an int is an index, refused");
    p = write_file("neg.csv", "a.mp4,-1\nb.mp4,2\n");
    expect_error(inputs_read_csv(p, &l, err, sizeof(err)), err, "neg.csv", 1, "negative",
                 "csv: negative label index refused");
    p = write_file("cap.csv", "a.mp4,65535\nb.mp4,0\n");
    rc = inputs_read_csv(p, &l, err, sizeof(err));
    expect(rc == 0 && l.n_labels == 65536 && l.clip[0].label == 65535, "csv: the largest index allowed reads");
    if (rc == 0) inputs_free(&l);
    else printf("     %s\n", err);

    // the same bound for labels given as numbers (the preprocessed-pixels input's /labels)
    const float ok_v[3] = {0, 3, 65535}, bad_v[][3] = {{0, 1e9f, 1}, {0, -1, 1}, {0, 1.5f, 1}, {0, NAN, 1}};
    rc = inputs_check_label_values("p.h5", "/labels", ok_v, 3, err, sizeof(err));
    expect(rc == 0, "label values: 0, 3, 65535 accepted");
    const char *why[] = {"1000000000", "-1", "1.5", "nan"};
    for (int k = 0; k < 4; k++) {
        rc = inputs_check_label_values("p.h5", "/labels", bad_v[k], 3, err, sizeof(err));
        char name[64];
        snprintf(name, sizeof(name), "label values: %s refused", why[k]);
        expect(rc != 0 && strstr(err, "p.h5: /labels[1] = ") && strstr(err, why[k]), name);
        if (rc == 0 || !strstr(err, why[k])) printf("     rc %d, got '%s'\n", rc, err);
    }
}

static void test_ssv2(void) {
    char err[2048];
    ClipList l;
    const char *labels = write_file("labels.json", "{\n"
                                                   "  \"Pushing something from left to right\": \"1\",\n"
                                                   "  \"Putting something on something\": \"0\",\n"
                                                   "  \"Holding something\": \"2\"\n"
                                                   "}\n");
    const char *ann = write_file("train.json",
                                 "[\n"
                                 "{\"id\": \"78687\", \"label\": \"putting a cup on a table\",\n"
                                 " \"template\": \"Putting [something] on [something]\", \"placeholders\": [\"a cup\", \"a table\"]},\n"
                                 "{\"id\": 42, \"label\": \"pushing pen\", \"template\": \"Pushing [something] from left to right\","
                                 " \"placeholders\": [\"pen\"]},\n"
                                 "{\"id\": \"7\", \"template\": \"Holding [something]\"}\n"
                                 "]\n");
    int rc = inputs_read_ssv2("/data/ssv2", ann, labels, &l, err, sizeof(err));
    expect(rc == 0, "ssv2: reads");
    if (rc) {
        printf("     %s\n", err);
        return;
    }
    expect(l.n == 3 && l.n_labels == 3, "ssv2: 3 clips, 3 labels");
    expect_str(l.label_names[0], "Putting something on something", "ssv2: labels.json index order");
    expect(l.clip[0].label == 0 && l.clip[1].label == 1 && l.clip[2].label == 2, "ssv2: template -> class");
    expect_str(l.clip[0].path, "/data/ssv2/78687.webm", "ssv2: VIDEOS/<id>.webm");
    expect_str(l.clip[1].clip_id, "42", "ssv2: numeric id");
    expect(l.clip[0].split == -1, "ssv2: split not given");
    inputs_free(&l);

    const char *bad = write_file("bad1.json", "[\n{\"id\": \"1\", \"template\": \"Holding [something]\"},\n\n"
                                              "  {\"id\": \"2\", \"template\": \"Dancing with [something]\"}\n]\n");
    expect_error(inputs_read_ssv2("/v", bad, labels, &l, err, sizeof(err)), err, "bad1.json", 4,
                 "class 'Dancing with something' is not in", "ssv2: unknown class");
    bad = write_file("bad2.json", "[\n{\"id\": \"1\", \"template\": \"Holding [something]\"},\n{\"template\": \"x\"}\n]");
    expect_error(inputs_read_ssv2("/v", bad, labels, &l, err, sizeof(err)), err, "bad2.json", 3, "entry 1 has no 'id'",
                 "ssv2: entry without id");
    bad = write_file("bad3.json", "[\n{\"id\": \"1\", \"template\": \"Holding [something]\"},\n{\"id\": \"2\",\n"
                                  " \"template\": \"Holding [something]\" \"x\"}\n]");
    expect_error(inputs_read_ssv2("/v", bad, labels, &l, err, sizeof(err)), err, "bad3.json", 4, "JSON syntax error",
                 "ssv2: syntax error");
    bad = write_file("bad4.json", "{\"id\": \"1\"}");
    expect_error(inputs_read_ssv2("/v", bad, labels, &l, err, sizeof(err)), err, "bad4.json", 1, "expected a JSON list",
                 "ssv2: not a list");
    bad = write_file("bad5.json", "[\n{\"id\": \"1\", \"template\": \"Holding [something]\"},\n"
                                  "{\"id\": \"1\", \"template\": \"Holding [something]\"}\n]");
    expect_error(inputs_read_ssv2("/v", bad, labels, &l, err, sizeof(err)), err, "bad5.json", 3,
                 "listed twice (first at line 2)", "ssv2: duplicate id");
    const char *bl = write_file("labels_dup.json", "{\n\"A\": \"0\",\n\"B\": \"0\"\n}");
    expect_error(inputs_read_ssv2("/v", ann, bl, &l, err, sizeof(err)), err, "labels_dup.json", 3,
                 "has index 0, as 'A' at line 2", "ssv2: labels with a repeated index");
    bl = write_file("labels_gap.json", "{\"A\": \"0\", \"B\": \"2\"}");
    expect_error(inputs_read_ssv2("/v", ann, bl, &l, err, sizeof(err)), err, "labels_gap.json", 1,
                 "no label has index 1", "ssv2: labels with a gap");
    bl = write_file("labels_bad.json", "{\n\"A\": \"0\",\n\"B\": \"x\"\n}");
    expect_error(inputs_read_ssv2("/v", ann, bl, &l, err, sizeof(err)), err, "labels_bad.json", 3,
                 "non-negative integer", "ssv2: label index not a number");
    // an index is bounded by the number of labels the file gives: no table of 10^9 entries
    bl = write_file("labels_huge.json", "{\n\"A\": \"0\",\n\"B\": \"999999999\"\n}");
    expect_error(inputs_read_ssv2("/v", ann, bl, &l, err, sizeof(err)), err, "labels_huge.json", 3,
                 "index 999999999, but the file gives 2 labels", "ssv2: label index 999999999 refused");
    bl = write_file("labels_far.json", "{\n\"A\": 0,\n\"B\": 5000000\n}");
    expect_error(inputs_read_ssv2("/v", ann, bl, &l, err, sizeof(err)), err, "labels_far.json", 3,
                 "indices must be 0..1", "ssv2: label index past the count refused at its line");
    bl = write_file("labels_neg.json", "{\n\"A\": 0,\n\"B\": -1\n}");
    expect_error(inputs_read_ssv2("/v", ann, bl, &l, err, sizeof(err)), err, "labels_neg.json", 3,
                 "non-negative integer", "ssv2: negative label index refused");
    // ids are kept whole, however long
    char idtext[1024], longid[201];
    memset(longid, '7', 200);
    longid[200] = 0;
    snprintf(idtext, sizeof(idtext), "[{\"id\": \"%s\", \"template\": \"Holding [something]\"},\n"
                                     " {\"id\": \"%.199s8\", \"template\": \"Holding [something]\"}]", longid, longid);
    bad = write_file("longid.json", idtext);
    labels = write_file("labels_h.json", "{\"Holding something\": \"0\"}"); // write_file's paths are reused
    rc = inputs_read_ssv2("/v", bad, labels, &l, err, sizeof(err));
    expect(rc == 0 && l.n == 2, "ssv2: two long ids that share a 199-character prefix read");
    if (rc == 0) {
        char want[300];
        snprintf(want, sizeof(want), "/v/%s.webm", longid);
        expect_str(l.clip[0].clip_id, longid, "ssv2: a 200-character id kept whole");
        expect_str(l.clip[0].path, want, "ssv2: its path VIDEOS/<id>.webm whole");
        inputs_free(&l);
    } else {
        printf("     %s\n", err);
    }
    rc = inputs_read_ssv2("/v", ann, "/nonexistent/labels.json", &l, err, sizeof(err));
    expect(rc != 0 && strstr(err, "/nonexistent/labels.json: cannot open: No such file or directory"),
           "ssv2: missing labels.json, with the system's reason");
}

static void test_k400(void) {
    char err[2048];
    ClipList l;
    const char *p = write_file("k400.csv", "label,youtube_id,time_start,time_end,split,is_cc\n"
                                           "abseiling,--07WQ2iBlw,1,11,train,0\n"
                                           "\"air drumming\",-0ABC,14,24,val,1\n"
                                           "abseiling,zzz,120,130.0,test,0\n");
    int rc = inputs_read_k400("/k/videos", p, &l, err, sizeof(err));
    expect(rc == 0, "k400: reads");
    if (rc) {
        printf("     %s\n", err);
        return;
    }
    expect(l.n == 3 && l.n_labels == 2, "k400: 3 clips, 2 labels");
    expect_str(l.clip[0].path, "/k/videos/--07WQ2iBlw_000001_000011.mp4", "k400: file name, zero-padded times");
    expect_str(l.clip[2].clip_id, "zzz_000120_000130", "k400: clip_id");
    expect(l.clip[0].label == 0 && l.clip[1].label == 1 && l.clip[0].split == 0 && l.clip[1].split == 1 &&
               l.clip[2].split == 1,
           "k400: labels and splits");
    inputs_free(&l);

    p = write_file("k400b.csv", "split,time_end,youtube_id,label,time_start\ntrain,5,abc,zumba,0\n");
    rc = inputs_read_k400("v", p, &l, err, sizeof(err));
    expect(rc == 0 && l.n == 1, "k400: columns in any order");
    if (rc == 0) {
        expect_str(l.clip[0].path, "v/abc_000000_000005.mp4", "k400: columns found by name");
        inputs_free(&l);
    }
    p = write_file("k400c.csv", "zumba,abc,3,13,train\n");
    rc = inputs_read_k400("v", p, &l, err, sizeof(err));
    expect(rc == 0 && l.n == 1, "k400: no header");
    if (rc == 0) inputs_free(&l);

    p = write_file("k1.csv", "label,youtube_id,time_start,time_end,split\na,x,1,2,train\nb,y,one,2,train\n");
    expect_error(inputs_read_k400("v", p, &l, err, sizeof(err)), err, "k1.csv", 3, "time_start 'one'", "k400: bad time");
    p = write_file("k2.csv", "label,youtube_id,time_start,time_end,split\na,x,1,2,holdout\n");
    expect_error(inputs_read_k400("v", p, &l, err, sizeof(err)), err, "k2.csv", 2, "split 'holdout'", "k400: bad split");
    p = write_file("k3.csv", "label,youtube_id,time_end\na,x,1\n");
    expect_error(inputs_read_k400("v", p, &l, err, sizeof(err)), err, "k3.csv", 1, "no column 'time_start'",
                 "k400: header without a column");
    p = write_file("k4.csv", "label,youtube_id,time_start,time_end,split\na,x,1,2,train\na,x,1\n");
    expect_error(inputs_read_k400("v", p, &l, err, sizeof(err)), err, "k4.csv", 3, "got 3 fields", "k400: short row");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_inputs DIR\n");
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s", argv[1]);
    test_csv();
    test_ssv2();
    test_k400();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
