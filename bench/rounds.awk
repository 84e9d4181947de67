# rounds.awk: what the interleaved benchmarks (bench_ingest, bench_vision) share to summarise
# rounds of `name value unit` lines whose names carry a round prefix `rN_`: per round, v[r, name]
# and unit[name]; med() the median, summary() median, min and max, ratio() a ratio taken round by
# round, medians() every name's median over the rounds. Used with a second -f file holding the
# benchmark's own END (mawk and gawk both take several -f files).
function med(a, k,    i, j, t) {
    for (i = 1; i <= k; i++)
        for (j = i + 1; j <= k; j++)
            if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
function summary(name, unit_, x, k,    i, lo, hi) {
    lo = hi = x[1]
    for (i = 2; i <= k; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i] }
    printf "%s %.4g %s\n%s_min %.4g %s\n%s_max %.4g %s\n", name, med(x, k), unit_, name, lo, unit_, name, hi, unit_
}
# a / b in each round that has both (b > 0): median, min and max.
function ratio(name, a, b,    r, k, x) {
    k = 0
    for (r = 1; r <= nr; r++)
        if (((r, a) in v) && ((r, b) in v) && v[r, b] > 0) x[++k] = v[r, a] / v[r, b]
    if (k) summary(name, "ratio", x, k)
}
# Every name's median over the rounds (peak RSS: the largest); names matching slices_re get a
# `_slices` suffix (a figure the caller reports from another run).
function medians(slices_re,    key, k, r, i, p, x) {
    for (key in keys) {
        k = 0
        for (r = 1; r <= nr; r++) if ((r, key) in v) x[++k] = v[r, key]
        if (key ~ /peak_rss/) {
            p = x[1]
            for (i = 2; i <= k; i++) if (x[i] > p) p = x[i]
            printf "%s %s %s\n", key, p, unit[key]
        } else if (key ~ slices_re) printf "%s_slices %.4f %s\n", key, med(x, k), unit[key]
        else printf "%s %.6g %s\n", key, med(x, k), unit[key]
        delete x
    }
}
match($1, /^r[0-9]+_/) {
    r = substr($1, 2, RLENGTH - 2) + 0; key = substr($1, RLENGTH + 1)
    if (r > nr) nr = r
    if ($2 ~ /^-?[0-9.]+$/) { v[r, key] = $2; unit[key] = $3; keys[key] = 1 }
}
