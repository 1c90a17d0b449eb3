"""The parts of make bench that only compute: Ansible recaps, package lists, memory by
systemd unit, rates, the table and the chart (tests/unit/test_bench.py covers them)."""
import re
from pathlib import Path

BEGIN = "<!-- bench:begin (written by make bench) -->"
END = "<!-- bench:end -->"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                   r"\s+skipped=(\d+)", re.M)


def recap(output):
    """{host: {ok, changed, unreachable, failed, skipped}} from ansible-playbook's output."""
    keys = ("ok", "changed", "unreachable", "failed", "skipped")
    return {m.group(1): dict(zip(keys, map(int, m.groups()[1:]), strict=True)) for m in RECAP.finditer(output)}


def installed(lines):
    """Package names dpkg reports installed ("ii") in `${db:Status-Abbrev} ${Package}` lines."""
    names = set()
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "ii":
            names.add(parts[1].split(":")[0])
    return names


def cpu_spent(before, after):
    """CPU seconds each unit spent between two unit_usage() snapshots, largest first."""
    spent = {unit: after[unit]["cpu_s"] - before.get(unit, {}).get("cpu_s", 0.0)
             for unit in after}
    return dict(sorted(((u, round(s, 1)) for u, s in spent.items() if s >= 0.05),
                       key=lambda item: -item[1]))


def rates(load):
    """Accepted and delivered messages per second, from the first connection."""
    accepted = load["accepted_times"]
    accept_rate = len(accepted) / (accepted[-1] - load["start"]) if accepted else 0.0
    delivered_at = load.get("delivered_at")
    deliver_rate = (load["found"] / (delivered_at - load["start"])
                    if delivered_at and load["found"] else 0.0)
    return accept_rate, deliver_rate


def ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


def deployment_rows(results):
    deploy, rerun, floor = results["deploy"], results["rerun"], results["floor"]
    return [
        f"| deployment, fresh (site.yml) | {deploy['seconds']:.0f} s, "
        f"{deploy['recap'].get('changed', '?')} changed | apt-get of the same "
        f"{floor['packages']} packages: {floor['seconds']:.0f} s "
        f"| {ratio(deploy['seconds'], floor['seconds'])} |",
        f"| deployment, again | {rerun['seconds']:.0f} s, "
        f"{rerun['recap'].get('changed', '?')} changed | the fresh run: {deploy['seconds']:.0f} s "
        f"| {ratio(rerun['seconds'], deploy['seconds'])} |",
    ]


def load_rows(results):
    loads = {load["name"]: load for load in results["loads"]}
    ceiling = loads.get("port 25, filters off")
    c_acc, c_del = rates(ceiling) if ceiling else (0.0, 0.0)
    rows = []
    for load in results["loads"]:
        acc, dlv = rates(load)
        lost = load["sent"] - load["found"]
        found = f"{load['found']}/{load['sent']} found" + (f", {lost} MISSING" if lost else "")
        if load is ceiling:
            compare, rat = "(the ceiling)", "1.00"
        else:
            compare = f"filters off: {c_acc:.1f} / {c_del:.1f} msg/s"
            rat = f"{ratio(acc, c_acc)} / {ratio(dlv, c_del)}"
        rows.append(f"| {load['name']}: accepted / delivered | {acc:.1f} / {dlv:.1f} msg/s "
                    f"({found}) | {compare} | {rat} |")
        if load.get("cpu"):
            per = 1000 / max(load["sent"], 1)
            cpu = ", ".join(f"{unit.removesuffix('.service')} {seconds * per:.0f}"
                            for unit, seconds in list(load["cpu"].items())[:5])
            rows.append(f"| {load['name']}: CPU seconds per 1000 messages | "
                        f"{sum(load['cpu'].values()) * per:.0f} | by unit: {cpu} | - |")
    return rows


def imap_row(imap):
    cold, warm = imap["cold"], imap["warm"]
    dropped = "" if cold.get("page_cache_dropped") else ", page cache kept"
    return (f"| IMAP, {imap['messages']} messages, cold (no index{dropped}): "
            f"SELECT + all headers | {cold['select']:.2f} + {cold['fetch']:.2f} s | "
            f"warm: {warm['select']:.2f} + {warm['fetch']:.2f} s | "
            f"{ratio(cold['select'] + cold['fetch'], warm['select'] + warm['fetch'])} |")


def footprint_rows(results):
    fp = results["footprint"]
    total = sum(fp["units"].values())
    top = ", ".join(f"{name.removesuffix('.service')} {kib / 1024:.0f}"
                    for name, kib in list(fp["units"].items())[:6])
    rows = [f"| memory (PSS) after the load, all units | {total / 1024:.0f} MiB | "
            f"largest (MiB): {top} | - |"]
    floor = results.get("floor")
    if floor:
        rows.append(f"| disk used, whole system | {floor['disk_mx_deployed'] / 1024:.0f} MiB "
                    f"deployed, {fp['disk_mx'] / 1024:.0f} MiB after the load | apt-get floor "
                    f"{floor['disk_floor'] / 1024:.0f} MiB, base image "
                    f"{floor['disk_base'] / 1024:.0f} MiB "
                    f"| {ratio(floor['disk_mx_deployed'], floor['disk_floor'])} |")
    else:
        rows.append(f"| disk used, whole system | {fp['disk_mx'] / 1024:.0f} MiB after the load "
                    "| - | - |")
    return rows


def table(results):
    m, p = results["machine"], results["params"]
    rows = ["| measurement | this stack | side by side | ratio |", "|---|---|---|---|"]
    if "deploy" in results:
        rows += deployment_rows(results)
    rows += load_rows(results) + [imap_row(results["imap"])] + footprint_rows(results)
    head = [
        f"Run of {m['date']} at commit {m['commit']}, mail host image {results['image']}, "
        f"{results['wall_seconds']:.0f} s in all.",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, kernel {m['kernel']}, "
        f"Docker {m['docker']}."
        + (f" Single-core yardstick (a fixed Perl regular-expression loop on the mail host, "
           f"best of 5): {m['yardstick']:.2f} s; lower is faster." if "yardstick" in m else ""),
        f"Command: `make bench` (messages={p['messages']}, size={p['size']} bytes, "
        f"sessions={p['sessions']}, imap_messages={p['imap_messages']}).",
        "",
    ]
    passed = "Every message sent was found in a Maildir, by Message-ID, none twice" + (
        "; the second run changed nothing." if "deploy" in results else ".")
    tail = [""] + ([f"**FAILED:** {failure}" for failure in results["failures"]] or [passed])
    return "\n".join(head + rows + tail)


def svg(results, width=900, height=300):
    """Messages accepted and delivered over time, one panel per load."""
    loads = results["loads"]
    panel = width // max(len(loads), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    for index, load in enumerate(loads):
        x0, top, bottom = index * panel + 40, 30, height - 40
        span = max([t for t, _ in load["samples"]] + load["accepted_times"] + [load["start"] + 1])
        span -= load["start"]
        scale_x = (panel - 60) / span
        scale_y = (bottom - top) / max(load["sent"], 1)

        def points(pairs, x0=x0, scale_x=scale_x, scale_y=scale_y, start=load["start"], bottom=bottom):
            step = max(len(pairs) // 300, 1)   # a few hundred points draw the same line
            pairs = pairs[::step] + pairs[-1:]
            return " ".join(f"{x0 + (t - start) * scale_x:.1f},{bottom - n * scale_y:.1f}"
                            for t, n in pairs)

        accepted = [(load["start"], 0)] + [(t, n + 1) for n, t in enumerate(load["accepted_times"])]
        parts += [
            f'<text x="{x0}" y="18" font-weight="bold">{load["name"]}</text>',
            f'<line x1="{x0}" y1="{bottom}" x2="{x0 + panel - 60}" y2="{bottom}" stroke="black"/>',
            f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{bottom}" stroke="black"/>',
            f'<text x="{x0 - 5}" y="{top + 4}" text-anchor="end">{load["sent"]}</text>',
            f'<text x="{x0 + panel - 60}" y="{bottom + 15}" text-anchor="end">{span:.0f} s</text>',
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{points(accepted)}"/>',
            f'<polyline fill="none" stroke="#d62728" stroke-width="2" '
            f'points="{points(load["samples"])}"/>',
        ]
    parts += [f'<text x="40" y="{height - 10}" fill="#1f77b4">accepted (SMTP 250)</text>',
              f'<text x="200" y="{height - 10}" fill="#d62728">delivered (found in a Maildir)</text>',
              "</svg>"]
    return "\n".join(parts) + "\n"


def write(output, results, table_text):
    """Put the table between the markers of OUTPUT (the rest is kept), the chart beside it."""
    output = Path(output)
    chart = output.with_name("benchmarks-throughput.svg")
    chart.write_text(svg(results))
    section = f"{BEGIN}\n{table_text}\n\n![throughput]({chart.name})\n{END}"
    text = output.read_text() if output.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    output.write_text(text)
