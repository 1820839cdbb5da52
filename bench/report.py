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
                if wname != "pair-instr"]
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
           f"pair-instr once), threads: {meta['threads']}",
           "- allocators: " + "; ".join(
               f"{name} {info['version'] or '?'}" + (" (static link)" if info.get("static") else "")
               for name, info in meta["allocators"].items())]
    if meta.get("missing_allocators"):
        out.append("- not measured: " + "; ".join(f"{k}: {v}" for k, v in meta["missing_allocators"].items()))
    if meta.get("programs"):
        out.append("- programs: " + ", ".join(meta["programs"].values()))
    if meta.get("goheap_env"):
        out.append("- environment: " + " ".join(f"{k}={v}" for k, v in meta["goheap_env"].items()))
    out += ["",
            f"Cells: median (min–max) ×ratio to **{ref}** (lower is better). "
            "Geomean: geometric mean of the ratios over the workloads both completed "
            "(count in brackets; pair-instr excluded). goheap-static is goheap linked "
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
    fails = failures(results)
    out += ["", "## Failed runs", "", fails or "none"]
    shorts = too_short(results)
    if shorts:
        out += ["", f"## Runs {SHORT} (they ran and their output was right; not in the ratios)",
                "", shorts]
    out += ["", "## Workloads", ""] + [f"- **{w.name}**: {w.description}" for w in workloads]
    return "\n".join(out) + "\n"


def plot(meta, workloads, allocators, results, path):
    """Grouped bars: ratio to the reference allocator, time and peak RSS."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = reference_allocator(allocators)
    colours = {"glibc": "#7f7f7f", "jemalloc": "#1f77b4", "tcmalloc": "#2ca02c",
               "mimalloc": "#9467bd", "goheap": "#d62728", "goheap-static": "#ff9896",
               "goheap-nobg": "#8c564b"}
    fig, axes = plt.subplots(2, 1, figsize=(max(10, 1.0 * len(workloads) + 3), 9))
    for ax, which, title in ((axes[0], "time", "wall time (pair-instr: instructions)"),
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
