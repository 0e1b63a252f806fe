"""The pages of ``musicrl serve``: plain HTML and a little JavaScript, usable on a phone.

Names and every other text from students reach the page through ``textContent`` (never as
HTML), and the server's own messages through :func:`html.escape`.
"""

from __future__ import annotations

import html

STYLE = """<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; max-width: 40em; margin: 0 auto; padding: 1em; line-height: 1.4; }
button { font-size: 1.1em; padding: 0.6em 0.9em; margin: 0.2em; border-radius: 0.4em; border: 1px solid #888;
         background: #f4f4f4; min-width: 3em; }
button.on { background: #1f6feb; color: white; border-color: #1f6feb; }
button.go { background: #2da44e; color: white; border-color: #2da44e; }
button:disabled { opacity: 0.45; }
input { font-size: 1.1em; padding: 0.5em; width: 100%; box-sizing: border-box; margin: 0.3em 0 0.8em; }
audio { width: 100%; margin: 0.3em 0 0.8em; }
.box { border: 1px solid #ddd; border-radius: 0.5em; padding: 0.8em; margin: 0.8em 0; }
.muted { color: #666; font-size: 0.9em; }
.error { color: #b42318; min-height: 1.3em; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.6em; border-bottom: 1px solid #eee; text-align: right; }
</style>"""


HEADER_JS = """function header(table, names) {
  const row = table.insertRow();
  for (const name of names) { const cell = document.createElement('th'); cell.textContent = name; row.appendChild(cell); }
}"""


def _page(title: str, body: str) -> str:
    body = body.replace("HEADER\n", HEADER_JS + "\n")
    return f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}</head>" \
           f"<body>{body}</body></html>"


def code_page(message: str, link: bool = False) -> str:
    """A refusal, with a form for the class code (or a link to the join page)."""
    form = ("<p><a href='/'>Join the class</a></p>" if link else
            "<form method='get' action='/'><label>Class code<input name='code' autocomplete='off' autofocus></label>"
            "<button class='go'>Go</button></form>")
    return _page("musicrl class", f"<h1>Listening test</h1><p class='error'>{html.escape(message)}</p>{form}")


def join_page(needs_code: bool, code: str = "") -> str:
    code_field = (f"<input type='hidden' id='code' value='{html.escape(code, quote=True)}'>" if needs_code else "")
    return _page("Join the listening test", f"""
<h1>Listening test</h1>
<p>You will hear a <b>target song</b>, then songs a recommender proposes. Rate each from 0 (nothing like the
target) to 4 (just like it), and say whether it came closer to the target than the song before. Your answers
steer the recommender. Headphones help.</p>
<form id="join"><label>Your first name or a pseudonym (nothing else is stored)
<input id="name" maxlength="40" autocomplete="off" autofocus required></label>{code_field}
<button class="go" type="submit">Join</button></form>
<p class="error" id="error"></p>
<script>
document.getElementById('join').addEventListener('submit', async (e) => {{
  e.preventDefault();
  const code = document.getElementById('code');
  const r = await fetch('/api/join', {{method: 'POST', headers: {{'content-type': 'application/json'}},
    body: JSON.stringify({{name: document.getElementById('name').value, code: code ? code.value : null}})}});
  if (r.ok) {{ location.href = '/session'; return; }}
  let message = 'could not join';
  try {{ message = (await r.json()).error; }} catch (_) {{}}
  document.getElementById('error').textContent = message;
}});
</script>""")


SESSION_PAGE = _page("Listening test", """
<h1>Listening test</h1>
<p class="muted" id="who"></p>
<div id="play">
  <div class="box"><b>1. Your target song</b> <span class="muted" id="target-note">listen to it first; play it again any time</span>
    <audio id="target" controls preload="auto"></audio></div>
  <div class="box"><b id="step">Song</b> <span class="muted">(the recommender's proposal)</span>
    <audio id="song" controls preload="auto"></audio>
    <div>How close is it to the target? <span class="muted">0 = nothing like it, 4 = just like it</span></div>
    <div id="ratings"></div>
    <div id="closer-row">Closer to the target than the song before?
      <div><button data-closer="1">closer</button><button data-closer="0">not closer</button></div></div>
    <button class="go" id="send" disabled>Answer</button>
  </div>
</div>
<div id="end" hidden>
  <h2 id="end-title">Session finished</h2>
  <p id="end-text"></p>
  <table id="end-table"></table>
  <p><button class="go" id="next" hidden>Next session</button></p>
</div>
<p class="error" id="error"></p>
<p class="muted" id="link"></p>
<script>
HEADER
let state = null, rating = null, closer = null, nonce = null, sending = false;
const $ = (id) => document.getElementById(id);
for (let r = 0; r <= 4; r++) {
  const b = document.createElement('button'); b.textContent = r; b.dataset.rating = r; $('ratings').appendChild(b);
}
const sleep = (ms) => new Promise(r => setTimeout(r, ms));
async function call(path, options) {
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await fetch(path, options);
      $('link').textContent = '';
      let data = {};
      try { data = await r.json(); } catch (_) {}
      if (r.status >= 500) throw new Error('server');
      return {ok: r.ok, status: r.status, data};
    } catch (e) {
      $('link').textContent = 'connection lost: reconnecting…';
      await sleep(Math.min(500 * (attempt + 1), 3000));
    }
  }
}
function choose() {
  for (const b of document.querySelectorAll('[data-rating]')) b.classList.toggle('on', Number(b.dataset.rating) === rating);
  for (const b of document.querySelectorAll('[data-closer]')) b.classList.toggle('on', Number(b.dataset.closer) === closer);
  $('send').disabled = sending || rating === null || (!state.first && closer === null);
}
document.addEventListener('click', (e) => {
  if (e.target.dataset.rating !== undefined) { rating = Number(e.target.dataset.rating); choose(); }
  if (e.target.dataset.closer !== undefined) { closer = Number(e.target.dataset.closer); choose(); }
});
function render(s, autoplay) {
  state = s;
  $('who').textContent = `${s.name} · session ${s.session === null ? s.sessions_played : s.number} of ${s.sessions_per_student}`;
  $('play').hidden = s.session === null; $('end').hidden = s.session !== null;
  if (s.session === null) return renderEnd(s);
  if ($('target').dataset.track !== s.target) { $('target').src = '/audio/' + encodeURIComponent(s.target); $('target').dataset.track = s.target; }
  if ($('song').dataset.track !== s.song || $('song').dataset.step !== String(s.step)) {
    $('song').src = '/audio/' + encodeURIComponent(s.song); $('song').dataset.track = s.song; $('song').dataset.step = s.step;
    if (autoplay) $('song').play().catch(() => {});
  }
  $('step').textContent = `2. Song ${s.step + 1} of ${s.steps}`;
  $('closer-row').hidden = s.first;
  rating = null; closer = null; nonce = Math.random().toString(36).slice(2) + Date.now().toString(36);
  choose();
}
function renderEnd(s) {
  const last = s.last;
  $('end-title').textContent = last ? 'Session finished' : 'Welcome';
  $('end-text').textContent = last ? (last.found_at === null ? 'The recommender did not play your target this time.' :
      `The recommender played your target at song ${last.found_at + 1}.`) + ' Your answers beside the ideal listener\\'s:' : '';
  const t = $('end-table'); t.replaceChildren();
  if (last) {
    header(t, ['song', 'you', 'closer', 'ideal', 'closer']);
    const yes = (i, v) => i ? (v ? 'yes' : 'no') : '–';
    last.steps.forEach((x, i) => { const r = t.insertRow();
      for (const v of [i + 1, x.rating, yes(i, x.closer), x.ideal_rating, yes(i, x.ideal_closer)]) r.insertCell().textContent = v; });
  }
  $('next').hidden = !s.more;
  $('next').textContent = `Start session ${s.sessions_played + 1} of ${s.sessions_per_student}`;
  if (!s.more) $('end-text').textContent += ' You have played every session: thank you!';
}
$('send').addEventListener('click', async () => {
  sending = true; choose();
  const r = await call('/api/answer', {method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({session: state.session, step: state.step, rating, closer: state.first ? 0 : closer, nonce})});
  sending = false;
  if (r.ok) { $('error').textContent = ''; render(r.data, true); return; }
  $('error').textContent = r.data.error || 'the answer was not taken';
  if (r.status === 409) { const s = await call('/api/state'); if (s.ok) render(s.data, false); } else choose();
});
$('next').addEventListener('click', async () => {
  const r = await call('/api/next', {method: 'POST'});
  if (r.ok) { $('error').textContent = ''; render(r.data, false); } else $('error').textContent = r.data.error;
});
(async () => {
  const r = await call('/api/state');
  if (r.ok) render(r.data, false); else { $('error').textContent = r.data.error; }
  setInterval(async () => { try { await fetch('/health'); $('link').textContent = ''; }
                            catch (_) { $('link').textContent = 'connection lost: reconnecting…'; } }, 10000);
})();
</script>""")


TEACHER_PAGE = _page("The class's Table 1", """
<h1>The class's Table 1</h1>
<p id="counts"></p>
<p><a id="download">Download the sessions (zip)</a></p>
<div id="table"></div>
<img id="figure" alt="the class's Table 1 as bars" style="max-width: 100%">
<h2>Students</h2>
<table id="students"></table>
<p class="muted" id="link"></p>
<script>
HEADER
const token = new URLSearchParams(location.search).get('token');
document.getElementById('download').href = '/teacher/sessions.zip?token=' + encodeURIComponent(token);
let pooled = -1;
async function refresh() {
  try {
    const r = await fetch('/api/teacher?token=' + encodeURIComponent(token));
    const s = await r.json();
    if (!r.ok) { document.getElementById('counts').textContent = s.error; return; }
    document.getElementById('link').textContent = '';
    document.getElementById('counts').textContent = `students joined ${s.students.length} · sessions running ${s.running} · ` +
      `finished ${s.finished} · clips ready ${s.audio_ready} of ${s.audio_total}`;
    const t = document.getElementById('students'); t.replaceChildren();
    header(t, ['student', 'joined', 'sessions']);
    for (const st of s.students) {
      const row = t.insertRow(); row.insertCell().textContent = st.name; row.insertCell().textContent = st.joined.slice(11);
      const step = (x) => x.finished ? `${x.number}: done` : `${x.number}: song ${x.answered + 1} of ${s.steps}`;
      row.insertCell().textContent = st.sessions.map(step).join(' · ');
    }
    if (s.pooled !== pooled) {
      pooled = s.pooled;
      document.getElementById('table').innerHTML = s.table || '<p>No session has finished yet.</p>';  // the server's own table: genres and numbers
      const img = document.getElementById('figure');
      if (s.table) img.src = '/teacher/figure.png?token=' + encodeURIComponent(token) + '&v=' + pooled; else img.removeAttribute('src');
    }
  } catch (_) { document.getElementById('link').textContent = 'connection lost: reconnecting…'; }
}
refresh(); setInterval(refresh, 3000);
</script>""")
