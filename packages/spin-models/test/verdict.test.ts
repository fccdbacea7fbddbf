import t from 'tap';
import { judgeFail, judgePass, parsePan, replayShowsError } from '../dist/verdict.js';

// pan's output in the shapes that must and must not pass. The passing
// shape is what pan 6.5.2 prints for a full search; each other case
// removes or adds the one thing that makes it untrustworthy.

const FULL_SAFETY = `
(Spin Version 6.5.2 -- 6 December 2019)
	+ Partial Order Reduction

Full statespace search for:
	never claim         	- (not selected)
	assertion violations	+
	cycle checks       	- (disabled by -DSAFETY)
	invalid end states	+

State-vector 244 byte, depth reached 117, errors: 0
      691 states, stored
      702 states, matched
     1393 transitions (= stored+matched)
  181.699	total actual memory usage

pan: elapsed time 0.01 seconds
`;

const FULL_LTL = `
Full statespace search for:
	never claim         	+ (terminates)
	assertion violations	+ (if within scope of claim)
	acceptance   cycles 	+ (fairness disabled)
	invalid end states	- (disabled by never claim)

State-vector 260 byte, depth reached 136, errors: 0
      623 states, stored (1246 visited)
`;

t.test('a full, error-free search of the right mode passes', async (t) => {
  t.ok(judgePass(parsePan(FULL_SAFETY), 'safety', undefined, [0, 0, 0]).ok);
  t.ok(judgePass(parsePan(FULL_LTL), 'ltl', 'terminates', [0, 0, 0]).ok);
  t.ok(judgePass(parsePan(FULL_SAFETY), 'safety', undefined, [0, 0, 0], 691).ok, 'with the pinned state count');
});

t.test('everything that makes a search untrustworthy fails it', async (t) => {
  const fails = (out: string, mode: 'safety' | 'ltl', claim: string | undefined, why: RegExp, codes = [0, 0, 0], pinned?: number) => {
    const v = judgePass(parsePan(out), mode, claim, codes, pinned);
    t.notOk(v.ok, why.source);
    t.match(v.reasons.join('; '), why);
  };
  fails(`${FULL_SAFETY}\nWarning: Search not completed`, 'safety', undefined, /search not completed/);
  fails(`${FULL_SAFETY}\nerror: max search depth too small`, 'safety', undefined, /depth limit/);
  fails(`${FULL_SAFETY}\npan: reached -DMEMLIM bound`, 'safety', undefined, /memory limit/);
  fails(FULL_SAFETY.replace('errors: 0', 'errors: 1'), 'safety', undefined, /1 errors/);
  fails(FULL_SAFETY.replace('Full statespace search for:', 'Bit statespace search for:'), 'safety', undefined, /not a full/);
  fails(FULL_SAFETY.replace(/errors: 0/, ''), 'safety', undefined, /did not finish/);
  fails(FULL_SAFETY.replace('invalid end states\t+', 'invalid end states\t-'), 'safety', undefined, /missing the safety line/);
  fails(FULL_SAFETY, 'safety', undefined, /exited/, [0, 0, 1]);
  fails(FULL_SAFETY, 'safety', undefined, /pins 700/, [0, 0, 0], 700);
  // liveness without -a prints no acceptance line; a misspelled claim names another one or none
  fails(FULL_LTL.replace('acceptance   cycles \t+ (fairness disabled)', 'acceptance   cycles \t- (not selected)'), 'ltl', 'terminates', /missing the ltl line/);
  fails(FULL_LTL, 'ltl', 'terminate', /missing the ltl line/);
  fails(`${FULL_LTL}\npan: error: no claim named terminat`, 'ltl', 'terminat', /claim not found/);
  fails(FULL_LTL.replace('acceptance   cycles', 'cycle checks       \t- (disabled by -DSAFETY)\n\tacceptance   cycles'), 'ltl', 'terminates', /under -DSAFETY/);
});

t.test('an expected failure must fail with the expected message', async (t) => {
  const found = parsePan(`pan:1: assertion violated ((lock[j]==2)) (at depth 79)\n${FULL_SAFETY.replace('errors: 0', 'errors: 1')}\nWarning: Search not completed`);
  t.ok(judgeFail(found, 'assertion violated ((lock[j]==2))').ok, 'the search stops at the error: not completing is expected');
  t.notOk(judgeFail(found, 'acceptance cycle').ok, 'another error is not the expected one');
  t.notOk(judgeFail(parsePan(FULL_SAFETY), 'assertion violated').ok, 'no error: the mutant was not caught');
});

t.test('a replay must end in the reported error', async (t) => {
  t.ok(replayShowsError('spin: locking.pml:125, Error: assertion violated', 'assertion violated (x) (at depth 3)'));
  t.ok(replayShowsError('  <<<<<START OF CYCLE>>>>>', 'acceptance cycle (at depth 40)'));
  t.notOk(replayShowsError('6 processes created', 'assertion violated (x)'), 'a replay without the error (wrong defines) fails');
  t.notOk(replayShowsError('spin: Error: assertion violated', 'acceptance cycle (at depth 4)'));
});
