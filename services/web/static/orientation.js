// The referral form's enhancements. Without this script the form works the same way
// (POST, redirect, GET): the commune is a plain text field the server resolves, and
// "Voir les lieux possibles" asks the server. With it:
// - the commune field suggests communes as one types (a native <datalist>, fed by
//   GET /api/v1/communes?q=, public data);
// - where the referral could go is shown as the fields change, by posting the fields
//   matching needs (never the person's name, phone, e-mail or note) as "Voir les lieux
//   possibles" does, and reading the page's answer.
const form = document.querySelector('form[action="/orientations/nouvelle"]');
const commune = document.getElementById('commune');
const list = document.getElementById('commune-suggestions');
const live = document.getElementById('apercu-direct');

/** Calls `f` once typing has paused for `ms`. */
function debounce(f, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => f(...args), ms);
  };
}

if (commune && list) {
  commune.setAttribute('list', list.id);
  let asked = '';
  let pending;
  const suggest = debounce(async () => {
    const q = commune.value.trim();
    if (q.length < 2 || q === asked) return;
    asked = q;
    pending?.abort();
    pending = new AbortController();
    try {
      const r = await fetch(`/api/v1/communes?q=${encodeURIComponent(q)}&limit=8`, {
        signal: pending.signal,
        headers: { accept: 'application/json' },
      });
      if (!r.ok) return;
      const { communes } = await r.json();
      list.replaceChildren(
        ...communes.map((c) => {
          const option = document.createElement('option');
          option.value = `${c.postcodes[0] ?? c.code} ${c.name}`;
          option.label = `${c.name} (${c.departement})`;
          return option;
        }),
      );
    } catch {
      // aborted or offline: the field still works as typed
    }
  }, 200);
  commune.addEventListener('input', suggest);
}

if (form && live) {
  const MATCHING = ['csrf', 'commune', 'languages', 'other_language', 'accessibility', 'needs', 'modes', 'max_distance_km', 'urgency'];
  let sequence = 0;
  const show = (text, kind) => {
    document.getElementById('apercu')?.remove();
    if (!text) {
      live.replaceChildren();
      return;
    }
    const alert = document.createElement('div');
    alert.className = `fr-alert fr-alert--${kind} fr-alert--sm`;
    const p = document.createElement('p');
    p.textContent = text;
    alert.append(p);
    live.replaceChildren(alert);
  };
  const preview = debounce(async () => {
    const all = new FormData(form);
    if (!String(all.get('commune') ?? '').trim() || all.getAll('needs').length === 0) {
      show('', 'info');
      return;
    }
    const body = new URLSearchParams();
    for (const [k, v] of all) if (MATCHING.includes(k)) body.append(k, v);
    body.append('apercu', '1');
    const mine = ++sequence;
    try {
      const r = await fetch(form.action, { method: 'POST', body, credentials: 'same-origin' });
      const page = new DOMParser().parseFromString(await r.text(), 'text/html');
      if (mine !== sequence) return;
      const found = page.querySelector('#apercu p');
      const problem = ['commune-error', 'max_distance_km-error', 'needs-error']
        .map((id) => page.getElementById(id)?.textContent?.trim())
        .find(Boolean);
      if (found) show(found.textContent.trim(), 'info');
      else if (problem) show(problem, 'warning');
      else show('', 'info');
    } catch {
      if (mine === sequence) show('', 'info');
    }
  }, 500);
  form.addEventListener('change', (e) => {
    if (MATCHING.includes(e.target?.name)) preview();
  });
}
