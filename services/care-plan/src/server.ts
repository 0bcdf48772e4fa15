import { runServiceMain } from '@cmc/service';
import { carePlanService } from './app';

runServiceMain(carePlanService);
