// The playground's link to the checker's diagnosis: the same server, mode,
// port, user and end-to-end choice (never the password), as the query
// parameters the checker's form reads.
import { $ } from './common.js';

function update() {
  const q = new URLSearchParams();
  for (const id of ['bridge', 'host', 'tls', 'port', 'user']) {
    const v = $(id)?.value.trim();
    if (v) q.set(id, v);
  }
  if ($('e2e')?.checked) q.set('e2e', '1');
  $('to-diagnose').href = `./?${q}#diagnose`;
}

for (const id of ['bridge', 'host', 'tls', 'port', 'user', 'e2e']) {
  $(id)?.addEventListener('input', update);
  $(id)?.addEventListener('change', update);
}
// The playground fills its form after its own module loaded: read it again
// when the link is about to be used.
for (const ev of ['focus', 'mouseenter', 'click']) $('to-diagnose').addEventListener(ev, update);
update();
