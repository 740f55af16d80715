"""The builders' plain many-to-many becomes BuilderMembership (same table, same columns), which
gains each node's platforms and its place in buildx's order."""

from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):

    dependencies = [
        ('builds', '0016_webhooks'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='BuilderMembership',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('builder', models.ForeignKey(db_column='buildxbuilder_id', on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='builds.buildxbuilder')),
                        ('node', models.ForeignKey(db_column='buildernode_id', on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='builds.buildernode')),
                    ],
                    options={
                        'db_table': 'builds_buildxbuilder_nodes',
                        'unique_together': {('builder', 'node')},
                    },
                ),
                migrations.AlterField(
                    model_name='buildxbuilder',
                    name='nodes',
                    field=models.ManyToManyField(blank=True, related_name='buildx_builders', through='builds.BuilderMembership', to='builds.buildernode'),
                ),
            ],
        ),
        migrations.AddField(
            model_name='buildermembership',
            name='platforms',
            field=models.JSONField(blank=True, db_default=models.Value([], models.JSONField()), default=list),
        ),
        migrations.AddField(
            model_name='buildermembership',
            name='position',
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
    ]
