import { createRoot } from 'react-dom/client';
import '@xterm/xterm/css/xterm.css';
import 'react-diff-view/style/index.css';
import './styles.css';
import './mobile/mobile.css';
import { App } from './App';
import { ToastProvider } from './components/Toasts';

createRoot(document.getElementById('root')!).render(
  <ToastProvider>
    <App />
  </ToastProvider>,
);
