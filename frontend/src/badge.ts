// The browser tab says how many tasks wait for you: "(2) AnyCode" and a count on
// the icon, so a background tab shows it.

import { useEffect } from 'react';

const TITLE = 'AnyCode';

function icon(count: number): string {
  const logo =
    "<rect width='32' height='32' rx='7' fill='#7c5cff'/><path d='M9 11l6 5-6 5M17 22h7' stroke='white' stroke-width='2.6' fill='none' stroke-linecap='round' stroke-linejoin='round'/>";
  const badge =
    count > 0
      ? `<circle cx='24' cy='8' r='8' fill='#f0883e' stroke='#0b0e14' stroke-width='1.5'/><text x='24' y='12' font-size='${count > 9 ? 9 : 12}' font-family='Arial,sans-serif' font-weight='700' text-anchor='middle' fill='#0b0e14'>${count > 9 ? '9+' : count}</text>`
      : '';
  const svg = `<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'>${logo}${badge}</svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

/** Puts `count` (tasks needing the user) into the tab's title and icon. */
export function useAttentionBadge(count: number) {
  useEffect(() => {
    document.title = count > 0 ? `(${count}) ${TITLE}` : TITLE;
    let link = document.querySelector<HTMLLinkElement>("link[rel='icon']");
    if (!link) {
      link = document.createElement('link');
      link.rel = 'icon';
      document.head.appendChild(link);
    }
    link.href = icon(count);
  }, [count]);
}
