import t from 'tap';
import { x } from '@dysco/protocol';
t.equal(x, 1);
