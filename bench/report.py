"""Turning the raw runs into the markdown summary and the PNG chart.

A run's "state" (harness.settle) is "measured", "failed" or "too short to
measure"; only measured runs give figures, the others are counted and
said. Figures are finite numbers or None (harness.settle drops inf and nan).
"""
import math
import statistics

SHORT = "too short to measure"


def usable(r, metric):
    """A finite figure of a measured run, or None."""
    if not r.get("ok") or r.get("state", "measured") != "measured":
        return None
    v = r.get(metric)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return v

TIME_METRIC = "wall_s"
RSS_METRIC = "maxrss_kb"


# The allocators goheap is measured against; "best anchor" is, per workload
# and figure, the one of these with the lowest median.
ANCHORS = ["glibc", "jemalloc", "tcmalloc", "mimalloc"]
# Issue 13's targets: time within 1.1x of the best anchor on every workload,
# peak RSS within 1.3x; a ratio above them is shown in bold.
TARGET = {"time": 1.1, "rss": 1.3}
# Instruction counts, not times: left out of the geometric means.
INSTR_WORKLOADS = ("pair-instr", "churn-instr")


def reference_allocator(allocators):
    names = [a.name for a in allocators]
    for ref in ("mimalloc", "glibc"):
        if ref in names:
            return ref
    return names[0]


def cell(results, workload, alloc, metric):
    """(median, min, max, n_ok, n_failed) of one metric for one cell."""
    rs = [r for r in results if r["workload"] == workload and r["allocator"] == alloc]
    vals = [v for v in (usable(r, metric) for r in rs) if v is not None]
    failed = sum(1 for r in rs if not r.get("ok"))
    if not vals:
        return None, None, None, 0, failed
    return statistics.median(vals), min(vals), max(vals), len(vals), failed


def n_short(results, workload, alloc):
    """Runs of one cell that ran but were too short to measure."""
    return sum(1 for r in results if r["workload"] == workload and r["allocator"] == alloc
               and r.get("ok") and r.get("state") == SHORT)


def metric_for(workload, which):
    if workload.kind == "instr":
        return "instr" if which == "time" else None
    return TIME_METRIC if which == "time" else RSS_METRIC


def fmt_value(v, metric):
    if metric == "instr":
        return f"{v:.0f} instr"
    if metric == RSS_METRIC:
        mib = v / 1024
        return f"{mib:.1f} MiB" if mib < 100 else f"{mib:.0f} MiB"
    return f"{v:.3f} s" if v < 10 else f"{v:.2f} s"


def fmt_spread(lo, hi, metric):
    if lo == hi:
        return ""
    if metric == RSS_METRIC:
        return f" ({lo / 1024:.1f}–{hi / 1024:.1f})"
    if metric == "instr":
        return f" ({lo:.0f}–{hi:.0f})"
    return f" ({lo:.3f}–{hi:.3f})" if hi < 10 else f" ({lo:.2f}–{hi:.2f})"


def ratios(workloads, allocators, results, which):
    """{alloc: {workload: ratio to reference}} for cells both completed."""
    ref = reference_allocator(allocators)
    out = {a.name: {} for a in allocators}
    for w in workloads:
        metric = metric_for(w, which)
        if metric is None:
            continue
        ref_med = cell(results, w.name, ref, metric)[0]
        for a in allocators:
            med = cell(results, w.name, a.name, metric)[0]
            if med is not None and ref_med:
                out[a.name][w.name] = med / ref_med
    return out


def anchors_of(allocators):
    return [a.name for a in allocators if a.name in ANCHORS]


def contenders(allocators):
    """The allocators compared with the best anchor: goheap and its variants
    (anything that is not an anchor)."""
    return [a for a in allocators if a.name not in ANCHORS]


def best_anchor(results, workload, metric, anchors):
    """(anchor, median) of the anchor with the lowest median on this
    workload and metric, or (None, None) if no anchor has a figure."""
    best = (None, None)
    for name in anchors:
        med = cell(results, workload, name, metric)[0]
        if med is not None and med > 0 and (best[1] is None or med < best[1]):
            best = (name, med)
    return best


def best_ratios(workloads, allocators, results, which):
    """{allocator: {workload: (ratio to the best anchor, that anchor)}} for
    every non-anchor allocator and workload both it and an anchor completed."""
    anchors = anchors_of(allocators)
    out = {a.name: {} for a in contenders(allocators)}
    for w in workloads:
        metric = metric_for(w, which)
        if metric is None:
            continue
        name, best = best_anchor(results, w.name, metric, anchors)
        if name is None:
            continue
        for a in contenders(allocators):
            med = cell(results, w.name, a.name, metric)[0]
            if med is not None:
                out[a.name][w.name] = (med / best, name)
    return out


def fmt_ratio(r, which):
    text = f"{r:.2f}"
    return f"**{text}**" if r > TARGET[which] else text


def best_table(workloads, allocators, results):
    """Per workload: the best anchor for time and for peak RSS, with its
    median, and each goheap variant's ratio to it; geometric means last."""
    anchors = anchors_of(allocators)
    cont = contenders(allocators)
    if not anchors or not cont:
        return None
    rat = {which: best_ratios(workloads, allocators, results, which) for which in ("time", "rss")}
    head = ["workload", "time: best anchor"] + [f"{a.name} ÷ best" for a in cont] \
        + ["peak RSS: best anchor"] + [f"{a.name} ÷ best" for a in cont]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for w in workloads:
        row = [w.name]
        for which in ("time", "rss"):
            metric = metric_for(w, which)
            name, best = best_anchor(results, w.name, metric, anchors) if metric else (None, None)
            row.append("—" if name is None else f"{name} {fmt_value(best, metric)}")
            for a in cont:
                if not a.supports(w):
                    row.append("n/a")
                    continue
                got = rat[which][a.name].get(w.name)
                if got is not None:
                    row.append(fmt_ratio(got[0], which))
                elif metric and cell(results, w.name, a.name, metric)[4]:
                    row.append("**failed**")
                else:
                    row.append("—")
        lines.append("| " + " | ".join(row) + " |")
    gm = ["**geomean**"]
    for which in ("time", "rss"):
        gm.append("")
        for a in cont:
            vals = [r for wname, (r, _) in rat[which][a.name].items() if wname not in INSTR_WORKLOADS]
            g = geomean(vals)
            gm.append("—" if g is None else f"{g:.2f} ({len(vals)})")
    lines.append("| " + " | ".join(gm) + " |")
    return "\n".join(lines)


def geomean(values):
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def metric_table(workloads, allocators, results, which):
    ref = reference_allocator(allocators)
    rat = ratios(workloads, allocators, results, which)
    lines = ["| workload | " + " | ".join(a.name for a in allocators) + " |",
             "|---|" + "---|" * len(allocators)]
    for w in workloads:
        metric = metric_for(w, which)
        if metric is None:
            continue
        row = []
        for a in allocators:
            if not a.supports(w):
                row.append("n/a")
                continue
            med, lo, hi, n_ok, n_failed = cell(results, w.name, a.name, metric)
            shorts = n_short(results, w.name, a.name)
            if med is None:
                row.append("**failed**" if n_failed else SHORT if shorts else "—")
                continue
            text = fmt_value(med, metric) + fmt_spread(lo, hi, metric)
            r = rat[a.name].get(w.name)
            if r is not None and a.name != ref:
                text += f" ×{r:.2f}"
            if n_failed:
                text += f" ({n_failed} failed)"
            if shorts:
                text += f" ({shorts} {SHORT})"
            row.append(text)
        lines.append(f"| {w.name} | " + " | ".join(row) + " |")
    gm_row = []
    for a in allocators:
        vals = [v for wname, v in rat[a.name].items()
                if wname not in INSTR_WORKLOADS]
        g = geomean(vals)
        gm_row.append("—" if g is None else f"**×{g:.2f}** ({len(vals)})")
    lines.append("| **geomean of ratios** | " + " | ".join(gm_row) + " |")
    return "\n".join(lines)


def extra_median(results, workload, alloc, key):
    vals = [r["extra"][key] for r in results
            if r["workload"] == workload and r["allocator"] == alloc and r.get("ok")
            and isinstance(r.get("extra", {}).get(key), (int, float))
            and not isinstance(r["extra"][key], bool) and math.isfinite(r["extra"][key])]
    return statistics.median(vals) if vals else None


def churn_table(allocators, results):
    lines = ["| realloc-churn | " + " | ".join(a.name for a in allocators) + " |",
             "|---|" + "---|" * len(allocators)]
    for label, key in (("wall", "wall_s"), ("user", "user_s"), ("sys (kernel)", "sys_s")):
        row = []
        for a in allocators:
            med = cell(results, "realloc-churn", a.name, key)[0]
            row.append("—" if med is None else f"{med:.2f} s")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def fragmentation_table(allocators, results):
    lines = ["| fragmentation | " + " | ".join(a.name for a in allocators) + " |",
             "|---|" + "---|" * len(allocators)]
    peak = [cell(results, "fragmentation", a.name, RSS_METRIC)[0] for a in allocators]
    lines.append("| peak RSS (OS) | " + " | ".join(
        "—" if v is None else f"{v / 1024:.0f} MiB" for v in peak) + " |")
    for label, key in (("final RSS (statm, at exit)", "final_rss_kb"),
                       ("RSS 0.5 s later", "settled_rss_kb"),
                       ("live data held", "live_kb")):
        row = []
        for a in allocators:
            v = extra_median(results, "fragmentation", a.name, key)
            row.append("—" if v is None else f"{v / 1024:.0f} MiB")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def extra_cells(allocators, results, workload, key, fmt):
    out = []
    for a in allocators:
        v = extra_median(results, workload, a.name, key)
        out.append("—" if v is None else fmt(v))
    return out


def thread_churn_table(allocators, results):
    """The per-thread figures thread-churn prints (medians over the runs)."""
    lines = ["| thread-churn | " + " | ".join(a.name for a in allocators) + " |",
             "|---|" + "---|" * len(allocators)]
    us = lambda v: f"{v / 1000:.1f} µs"  # noqa: E731
    lines.append("| thread create + first malloc + exit | "
                 + " | ".join(extra_cells(allocators, results, "thread-churn", "ns_per_thread", us)) + " |")
    lines.append("| the same without the malloc | "
                 + " | ".join(extra_cells(allocators, results, "thread-churn", "ns_per_thread_bare", us)) + " |")
    diff = []
    for a in allocators:
        m = extra_median(results, "thread-churn", a.name, "ns_per_thread")
        b = extra_median(results, "thread-churn", a.name, "ns_per_thread_bare")
        diff.append("—" if m is None or b is None else f"{(m - b) / 1000:+.1f} µs")
    lines.append("| difference (the first malloc's share) | " + " | ".join(diff) + " |")
    lines.append("| churn phase | " + " | ".join(
        extra_cells(allocators, results, "thread-churn", "churn_s", lambda v: f"{v:.3f} s")) + " |")
    lines.append("| minor page faults | " + " | ".join(
        extra_cells(allocators, results, "thread-churn", "minor_faults", lambda v: f"{v:.0f}")) + " |")
    return "\n".join(lines)


def small_heap_table(allocators, results):
    lines = ["| small-heap | " + " | ".join(a.name for a in allocators) + " |",
             "|---|" + "---|" * len(allocators)]
    peak = [cell(results, "small-heap", a.name, RSS_METRIC)[0] for a in allocators]
    lines.append("| peak RSS (OS) | " + " | ".join(
        "—" if v is None else f"{v:.0f} KiB" for v in peak) + " |")
    kib = lambda v: f"{v:.0f} KiB"  # noqa: E731
    for label, key in (("RSS before the threads start", "rss_before_kb"),
                       ("RSS with all 5 threads alive", "rss_all_kb"),
                       ("live data held", "live_kb"),
                       ("overhead: RSS growth − live data", "overhead_kb")):
        lines.append(f"| {label} | " + " | ".join(
            extra_cells(allocators, results, "small-heap", key, kib)) + " |")
    return "\n".join(lines)


def sized_table(allocators, results, names):
    """Which free the sized workloads really called, per allocator."""
    lines = ["| sized free | " + " | ".join(a.name for a in allocators) + " |",
             "|---|" + "---|" * len(allocators)]
    for wname, key in (("free-sized", "via"), ("sized-delete", "delete_from")):
        if wname not in names:
            continue
        row = []
        for a in allocators:
            vals = sorted({str(r["extra"].get(key)) for r in results
                           if r["workload"] == wname and r["allocator"] == a.name and r.get("ok")})
            row.append(", ".join(vals) if vals else "—")
        label = "free-sized: freed with" if wname == "free-sized" else "sized-delete: operator delete from"
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def failures(results):
    lines = []
    for r in results:
        if not r.get("ok"):
            lines.append(f"- {r['workload']} under {r['allocator']} (run {r['round'] + 1}): "
                         f"{r.get('error', '?')}")
    return "\n".join(lines)


def too_short(results):
    lines = []
    for r in results:
        if r.get("ok") and r.get("state") == SHORT:
            lines.append(f"- {r['workload']} under {r['allocator']} (run {r['round'] + 1}): "
                         f"{r.get('note', SHORT)}")
    return "\n".join(lines)


def summary_markdown(meta, workloads, allocators, results):
    m = meta["machine"]
    ref = reference_allocator(allocators)
    names = {w.name for w in workloads}
    out = [f"# goheap benchmark ({meta['size']})", "",
           f"- date: {meta['date']}, elapsed {meta.get('elapsed_s', '?')} s",
           f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB memory, "
           f"kernel {m['kernel']}, THP enabled `{m['thp_enabled']}`, defrag `{m['thp_defrag']}`",
           f"- runs per cell: {meta['runs_per_cell']} (interleaved across allocators; "
           f"pair-instr and churn-instr once), threads: {meta['threads']}",
           "- allocators: " + "; ".join(
               f"{name} {info['version'] or '?'}" + (" (static link)" if info.get("static") else "")
               for name, info in meta["allocators"].items())]
    if meta.get("missing_allocators"):
        out.append("- not measured: " + "; ".join(f"{k}: {v}" for k, v in meta["missing_allocators"].items()))
    if meta.get("programs"):
        out.append("- programs: " + ", ".join(meta["programs"].values()))
    if meta.get("goheap_env"):
        out.append("- environment: " + " ".join(f"{k}={v}" for k, v in meta["goheap_env"].items()))
    table = best_table(workloads, allocators, results)
    if table:
        anchors = anchors_of(allocators)
        out += ["", "## goheap ÷ the best anchor", "",
                f"Per workload, the best (lowest median) of the anchors measured "
                f"({', '.join(anchors)}) for wall time and for peak RSS, its median, and "
                "each goheap variant's median divided by it (lower is better; below 1: "
                "goheap beats every anchor). **Bold**: above issue 13's targets, "
                f"{TARGET['time']}× for time and {TARGET['rss']}× for peak RSS. Geomean: over "
                "the workloads with a ratio (count in brackets; pair-instr and churn-instr, "
                "instruction counts, excluded).", "", table]
    out += ["",
            f"Cells: median (min–max) ×ratio to **{ref}** (lower is better). "
            "Geomean: geometric mean of the ratios over the workloads both completed "
            "(count in brackets; pair-instr and churn-instr excluded). goheap-static is goheap linked "
            "statically into our own C workloads (n/a for real programs); goheap-nobg is "
            "goheap with its background scavenger off (GOHEAP_BACKGROUND=0). redis's glibc "
            "column preloads a shim to glibc, as Debian links redis-server with jemalloc.",
            "", "## Wall time", "", metric_table(workloads, allocators, results, "time"),
            "", "## Peak RSS (ru_maxrss of the child)", "",
            metric_table(workloads, allocators, results, "rss")]
    if "realloc-churn" in names:
        out += ["", "## realloc-churn: user vs kernel time (medians)", "",
                churn_table(allocators, results)]
    if "fragmentation" in names:
        out += ["", "## fragmentation: resident memory (medians)", "",
                fragmentation_table(allocators, results)]
    if "thread-churn" in names:
        out += ["", "## thread-churn: what a thread costs (medians; threads created one at a time)", "",
                thread_churn_table(allocators, results)]
    if "small-heap" in names:
        out += ["", "## small-heap: memory with 320 KiB live on 5 threads (medians)", "",
                small_heap_table(allocators, results)]
    if names & {"free-sized", "sized-delete"}:
        out += ["", "## sized free: the path taken", "", sized_table(allocators, results, names)]
    fails = failures(results)
    out += ["", "## Failed runs", "", fails or "none"]
    shorts = too_short(results)
    if shorts:
        out += ["", f"## Runs {SHORT} (they ran and their output was right; not in the ratios)",
                "", shorts]
    out += ["", "## Workloads", ""] + [f"- **{w.name}**: {w.description}" for w in workloads]
    return "\n".join(out) + "\n"


def plot(meta, workloads, allocators, results, path):
    """The chart of the run: goheap ÷ the best anchor per workload (plot_best)
    when goheap and an anchor were measured, else the grouped bars of every
    allocator (plot_all)."""
    if any(a.name == "goheap" for a in allocators) and anchors_of(allocators):
        plot_best(meta, workloads, allocators, results, path)
    else:
        plot_all(meta, workloads, allocators, results, path)


def plot_best(meta, workloads, allocators, results, path):
    """One row per workload, two panels (wall time, peak RSS): a bar for
    goheap ÷ the best anchor, labelled with the ratio and that anchor;
    goheap-static and goheap-nobg as markers; lines at 1 and at the targets.
    Log scale, so 0.5 and 2 are as far from 1."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.transforms  # noqa: F401 (blended_transform_factory)

    ws = list(workloads)
    markers = {"goheap-static": ("D", "#ff7f0e"), "goheap-nobg": ("|", "#8c564b")}
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.32 * len(ws) + 2.2), sharey=True)
    for ax, which, title in ((axes[0], "time", "wall time (pair-/churn-instr: instructions)"),
                             (axes[1], "rss", "peak RSS")):
        rat = best_ratios(ws, allocators, results, which)
        ys = list(range(len(ws)))[::-1]   # first workload on top
        main = rat.get("goheap", {})
        vals, lo = [], 1.0
        for y, w in zip(ys, ws):
            got = main.get(w.name)
            if got is None:
                if metric_for(w, which) is not None:
                    ax.text(1.0, y, "  no ratio", va="center", fontsize=7, color="#555555")
                continue
            r, anchor = got
            over = r > TARGET[which]
            ax.barh(y, r - 1.0, left=1.0, height=0.7,
                    color="#d62728" if over else "#2ca02c", alpha=0.85)
            ax.text(0.99, y, f"{r:.2f} ({anchor})", va="center", ha="right", fontsize=7,
                    transform=matplotlib.transforms.blended_transform_factory(ax.transAxes, ax.transData))
            vals.append(r)
            lo = min(lo, r)
        for name, (mark, colour) in markers.items():
            pts = [(rat[name][w.name][0], y) for y, w in zip(ys, ws) if w.name in rat.get(name, {})]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], mark, color=colour,
                        markersize=4, label=name, linestyle="none")
                vals += [p[0] for p in pts]
        hi = max(vals + [TARGET[which]])
        ax.set_xscale("log", base=2)
        ax.set_xlim(min(lo, min(vals or [1.0])) / 1.25, hi * 2.6)   # room for the labels
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.axvline(TARGET[which], color="#d62728", linewidth=0.8, linestyle="--",
                   label=f"target {TARGET[which]}×")
        ax.set_yticks(ys)
        ax.set_yticklabels([w.name for w in ws], fontsize=8)
        ax.set_ylim(-0.7, len(ws) - 0.3)
        ax.grid(axis="x", alpha=0.3)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(f"{title}: goheap ÷ best anchor (lower is better)", fontsize=10)
    m = meta["machine"]
    fig.suptitle(f"goheap ÷ the best of {', '.join(anchors_of(allocators))} per workload — "
                 f"{meta['size']}, medians of {meta['runs_per_cell']} runs, {meta['date']}, "
                 f"{m['nproc']} CPUs; green: within target, red: above", fontsize=10)
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    inch = 0.4 / fig.get_size_inches()[1]   # a strip at the bottom for the legend
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, inch, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_all(meta, workloads, allocators, results, path):
    """Grouped bars: ratio to the reference allocator, time and peak RSS."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = reference_allocator(allocators)
    colours = {"glibc": "#7f7f7f", "jemalloc": "#1f77b4", "tcmalloc": "#2ca02c",
               "mimalloc": "#9467bd", "goheap": "#d62728", "goheap-static": "#ff9896",
               "goheap-nobg": "#8c564b"}
    fig, axes = plt.subplots(2, 1, figsize=(max(10, 1.0 * len(workloads) + 3), 9))
    for ax, which, title in ((axes[0], "time", "wall time (pair-/churn-instr: instructions)"),
                             (axes[1], "rss", "peak RSS")):
        ws = [w for w in workloads if metric_for(w, which)]
        rat = ratios(ws, allocators, results, which)
        n = len(allocators)
        width = 0.8 / n
        ref_meds = {w.name: cell(results, w.name, ref, metric_for(w, which))[0] for w in ws}
        for i, a in enumerate(allocators):
            xs, ys, lo, hi, fx = [], [], [], [], []
            for j, w in enumerate(ws):
                x = j - 0.4 + width * (i + 0.5)
                if w.name in rat[a.name]:
                    med, mn, mx, _, _ = cell(results, w.name, a.name, metric_for(w, which))
                    xs.append(x)
                    ys.append(rat[a.name][w.name])
                    lo.append(max(0.0, (med - mn) / ref_meds[w.name]))
                    hi.append(max(0.0, (mx - med) / ref_meds[w.name]))
                elif a.supports(w):
                    fx.append(x)
            ax.bar(xs, ys, width, label=a.name, color=colours.get(a.name),
                   yerr=[lo, hi], error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#333333"})
            if fx:
                ax.plot(fx, [1.0] * len(fx), "x", color="black", markersize=7)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log", base=2)
        ax.set_xticks(range(len(ws)))
        ax.set_xticklabels([w.name for w in ws], rotation=30, ha="right")
        ax.set_ylabel(f"ratio to {ref} (log)")
        ax.set_title(f"{title}, median relative to {ref}, whiskers min–max — lower is better; x = failed",
                     fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axes[0].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    m = meta["machine"]
    fig.suptitle(f"goheap bench ({meta['size']}, {meta['runs_per_cell']} runs, medians) — "
                 f"{meta['date']}, {m['nproc']} CPUs, kernel {m['kernel']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
