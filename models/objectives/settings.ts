// The settings mechanism lives in core/settings.ts: objectives and the run's own settings (harness/run-settings.ts) declare their keys the same way.
export * from '../../core/settings.ts';
