() => {
  // Citation chips: <span class="cite-chip cq-t{turn}-n{n}">. Clicking one shows that answer's sources and
  // scrolls to passage n. The chat's sanitiser drops data-* attributes, hence the class-name encoding.
  if (window.__citeqaReady) return;
  window.__citeqaReady = true;

  function parse(el) {
    const m = /\bcq-t(\d+)-n(\d+)\b/.exec(el.className || "");
    return m ? { t: m[1], n: m[2] } : null;
  }

  function activate(t, n) {
    if (typeof t === "string" && t.includes(":") && n === undefined) [t, n] = t.split(":");
    const el = document.getElementById(`cq-src-${t}-${n}`);
    if (!el) return false;
    document.querySelectorAll(".cq-passage.cq-active").forEach((e) => e.classList.remove("cq-active"));
    el.classList.add("cq-active");
    el.scrollIntoView({ behavior: "smooth", block: "nearest" });
    const mark = el.querySelector("mark");
    if (mark) {
      mark.classList.remove("cq-flash");
      void mark.offsetWidth; // restart the animation
      mark.classList.add("cq-flash");
    }
    return true;
  }
  window.citeqaActivate = activate;

  window.citeqaScrollChat = () => {
    const box = document.querySelector("#cq-chat .bubble-wrap, #cq-chat [role=log]");
    if (box) box.scrollTop = box.scrollHeight;
  };

  function ask(t, n, what) {
    // Ask the server to show answer t in the sources panel (hidden textbox + hidden button, see ui/app.py);
    // what = "page": with citation n on its PDF page.
    const box = document.querySelector("#cq-chip-target textarea, #cq-chip-target input");
    const go = document.querySelector("#cq-chip-go");
    if (!box || !go) return;
    box.value = what ? `${t}:${n}:${what}` : `${t}:${n}`;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    setTimeout(() => go.click(), 0);
  }

  function open(chip) {
    const c = parse(chip);
    if (!c) return;
    const shown = document.getElementById(`cq-sources-${c.t}`);
    if (shown && activate(c.t, c.n)) return; // that answer's sources are already in the panel
    ask(c.t, c.n);
  }

  document.addEventListener(
    "click",
    (ev) => {
      const show = ev.target.closest && ev.target.closest(".cq-show-page");
      if (show) {
        // "Show on page N": the server renders that page (once; it is cached) with the cited span boxed
        const m = /\bcq-pv-t(\d+)-n(\d+)\b/.exec(show.className || "");
        if (m) {
          show.disabled = true;
          show.textContent = "Rendering the page…";
          ask(m[1], m[2], "page");
        }
        return;
      }
      const chip = ev.target.closest && ev.target.closest(".cite-chip");
      if (!chip) return;
      ev.preventDefault();
      ev.stopPropagation();
      open(chip);
    },
    true
  );
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter" && ev.key !== " ") return;
    const chip = ev.target.closest && ev.target.closest(".cite-chip");
    if (!chip) return;
    ev.preventDefault();
    open(chip);
  });
}
