// The giftlock page's only script: the reveal form and its copy buttons.
// Revealed codes live in the page's DOM until they are hidden again; no
// storage API of the browser is used (no cookies from script, no
// localStorage, sessionStorage, IndexedDB, Cache or service worker).
'use strict';

document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('reveal');
  if (!form) {
    return;
  }
  const status = document.getElementById('reveal-status');
  const list = document.getElementById('codes');
  let timer = null;

  const hide = () => {
    list.replaceChildren();
    status.textContent = 'Hidden again. Enter the secret to reveal once more.';
    form.dataset.state = 'hidden';
    timer = null;
  };

  const item = (c) => {
    const li = document.createElement('li');
    const label = document.createElement('span');
    label.textContent = `${c.brand}${c.amount ? ' ' + c.amount : ''} (${c.handle || 'no handle'}): `;
    const code = document.createElement('code');
    code.className = 'code';
    code.textContent = c.code;
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.textContent = 'Copy';
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(code.textContent);
        copy.textContent = 'Copied';
      } catch (e) {
        copy.textContent = 'Copying failed: select the code';
      }
    });
    li.append(label, code, ' ', copy);
    return li;
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = new URLSearchParams(new FormData(form));
    form.elements.secret.value = '';
    status.textContent = 'Checking the secret…';
    form.dataset.state = 'checking';
    let answer;
    try {
      const response = await fetch(form.action, {
        method: 'POST',
        body,
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { Accept: 'application/json' },
      });
      answer = await response.json();
    } catch (e) {
      status.textContent = 'The service did not answer.';
      form.dataset.state = 'failed';
      return;
    }
    if (!answer.ok) {
      status.textContent = answer.error;
      form.dataset.state = 'refused';
      return;
    }
    if (timer) {
      clearTimeout(timer);
    }
    list.replaceChildren(...answer.codes.map(item));
    status.textContent = `Shown for ${answer.hide_after} seconds.`;
    form.dataset.state = 'shown';
    timer = setTimeout(hide, answer.hide_after * 1000);
  });
});
